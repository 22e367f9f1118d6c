// AEAD records sealed and opened in place with the OpenSSL inside Node (the addon links to the
// symbols the node binary exports, so there is no second copy of OpenSSL). node:crypto needs a
// new cipher object and a new output buffer per record; here a key holds one OpenSSL context
// whose key schedule is kept, each record only sets its nonce, and the output goes where the
// caller says: into the input itself, or a buffer it reuses. Calls are synchronous: they run
// on the stream workers' threads, never on the event loop of the main thread.
#include <napi.h>
#include <openssl/evp.h>

#include <cstring>
#include <string>

namespace escp {
namespace {

constexpr int kNonceBytes = 12;
constexpr int kTagBytes = 16;
// A record's payload is at most 64 MiB plus a little; OpenSSL counts bytes in an int.
constexpr size_t kMaxBytes = 1u << 30;

const EVP_CIPHER* CipherNamed(const std::string& name, size_t* keyBytes) {
  if (name == "aes-128-gcm") {
    *keyBytes = 16;
    return EVP_aes_128_gcm();
  }
  if (name == "aes-256-gcm") {
    *keyBytes = 32;
    return EVP_aes_256_gcm();
  }
  if (name == "chacha20-poly1305") {
    *keyBytes = 32;
    return EVP_chacha20_poly1305();
  }
  return nullptr;
}

struct Bytes {
  uint8_t* data;
  size_t length;
};

Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Uint8Array");
  Napi::TypedArray view = info[i].As<Napi::TypedArray>();
  if (view.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Uint8Array");
  Napi::ArrayBuffer ab = view.ArrayBuffer();
  if (ab.IsDetached()) throw Napi::TypeError::New(info.Env(), std::string(what) + " is detached");
  if (view.ByteLength() > kMaxBytes) throw Napi::RangeError::New(info.Env(), std::string(what) + " is too large");
  return {static_cast<uint8_t*>(ab.Data()) + view.ByteOffset(), view.ByteLength()};
}

// Output may be the input itself, or apart from it; a partial overlap would garble both.
void CheckOutput(const Napi::Env& env, const Bytes& in, const Bytes& out) {
  if (out.length < in.length) throw Napi::RangeError::New(env, "the output is shorter than the input");
  bool apart = out.data + in.length <= in.data || in.data + in.length <= out.data;
  if (!apart && out.data != in.data) throw Napi::RangeError::New(env, "the output overlaps the input without being it");
}

class AeadKey : public Napi::ObjectWrap<AeadKey> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "AeadKey", {InstanceMethod("seal", &AeadKey::Seal), InstanceMethod("open", &AeadKey::Open)});
  }

  // new AeadKey(algorithm, rawKey)
  explicit AeadKey(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AeadKey>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString()) throw Napi::TypeError::New(env, "algorithm must be a string");
    std::string name = info[0].As<Napi::String>().Utf8Value();
    size_t keyBytes = 0;
    const EVP_CIPHER* cipher = CipherNamed(name, &keyBytes);
    if (cipher == nullptr) throw Napi::TypeError::New(env, "unknown algorithm " + name);
    Bytes key = ArgBytes(info, 1, "key");
    if (key.length != keyBytes) throw Napi::RangeError::New(env, name + " needs a " + std::to_string(keyBytes) + "-byte key");
    ctx_ = EVP_CIPHER_CTX_new();
    if (ctx_ == nullptr || EVP_CipherInit_ex(ctx_, cipher, nullptr, key.data, nullptr, 1) != 1) {
      throw Napi::Error::New(env, "OpenSSL could not set up " + name);
    }
  }

  ~AeadKey() override {
    if (ctx_ != nullptr) EVP_CIPHER_CTX_free(ctx_);
  }

 private:
  // seal(nonce, aad, plain, out, tag): out gets the ciphertext, tag the 16-byte tag.
  Napi::Value Seal(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Bytes nonce = Nonce(info);
    Bytes aad = ArgBytes(info, 1, "aad");
    Bytes plain = ArgBytes(info, 2, "plain");
    Bytes out = ArgBytes(info, 3, "out");
    Bytes tag = ArgBytes(info, 4, "tag");
    CheckOutput(env, plain, out);
    if (tag.length != kTagBytes) throw Napi::RangeError::New(env, "tag must be 16 bytes");
    int n = 0;
    bool ok = EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce.data, 1) == 1 &&
              (aad.length == 0 || EVP_CipherUpdate(ctx_, nullptr, &n, aad.data, static_cast<int>(aad.length)) == 1) &&
              (plain.length == 0 || EVP_CipherUpdate(ctx_, out.data, &n, plain.data, static_cast<int>(plain.length)) == 1) &&
              EVP_CipherFinal_ex(ctx_, out.data + plain.length, &n) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, kTagBytes, tag.data) == 1;
    if (!ok) throw Napi::Error::New(env, "OpenSSL failed to seal a record");
    return env.Undefined();
  }

  // open(nonce, aad, ciphertext, tag, out): true when authentic (out then holds the plain
  // bytes); false when anything was altered (out then holds garbage and must not be used).
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Bytes nonce = Nonce(info);
    Bytes aad = ArgBytes(info, 1, "aad");
    Bytes cipherText = ArgBytes(info, 2, "ciphertext");
    Bytes tag = ArgBytes(info, 3, "tag");
    Bytes out = ArgBytes(info, 4, "out");
    CheckOutput(env, cipherText, out);
    if (tag.length != kTagBytes) return Napi::Boolean::New(env, false);
    int n = 0;
    bool set = EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce.data, 0) == 1 &&
               EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kTagBytes, tag.data) == 1 &&
               (aad.length == 0 || EVP_CipherUpdate(ctx_, nullptr, &n, aad.data, static_cast<int>(aad.length)) == 1) &&
               (cipherText.length == 0 || EVP_CipherUpdate(ctx_, out.data, &n, cipherText.data, static_cast<int>(cipherText.length)) == 1);
    if (!set) throw Napi::Error::New(env, "OpenSSL failed to open a record");
    return Napi::Boolean::New(env, EVP_CipherFinal_ex(ctx_, out.data + cipherText.length, &n) == 1);
  }

  Bytes Nonce(const Napi::CallbackInfo& info) {
    Bytes nonce = ArgBytes(info, 0, "nonce");
    if (nonce.length != kNonceBytes) throw Napi::RangeError::New(info.Env(), "nonce must be 12 bytes");
    return nonce;
  }

  EVP_CIPHER_CTX* ctx_ = nullptr;
};

}  // namespace
}  // namespace escp

static Napi::Object InitAead(Napi::Env env, Napi::Object exports) {
  exports.Set("AeadKey", escp::AeadKey::Define(env));
  exports.Set("openssl", Napi::String::New(env, OpenSSL_version(OPENSSL_VERSION)));
  return exports;
}

NODE_API_MODULE(escp_aead, InitAead)
