// Errors as Node's fs reports them: the strerror text, errno (negative) and the failing call;
// the TypeScript layer adds the errno name and turns them into ESCP_ERR_IO.
#pragma once
#include <napi.h>

#include <cstring>

namespace escp {

inline Napi::Error SyscallError(Napi::Env env, int err, const char* syscall) {
  Napi::Error e = Napi::Error::New(env, std::strerror(err));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

}  // namespace escp
