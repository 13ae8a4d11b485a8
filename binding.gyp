{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["agent/intercept/native/original-dst.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
