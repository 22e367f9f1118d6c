{
  "targets": [
    {
      "target_name": "escp_shm_c",
      "type": "static_library",
      "sources": ["src/escp_shm.c"],
      "include_dirs": ["include"],
      "cflags_c": ["-std=c11", "-O2", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "direct_dependent_settings": { "include_dirs": ["include"] }
    },
    {
      "target_name": "escp_shm",
      "sources": ["native/addon.cc", "native/wait-threads.cc"],
      "include_dirs": ["native"],
      "dependencies": ["escp_shm_c", "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now", "-Wl,-z,noexecstack"]
    }
  ]
}
