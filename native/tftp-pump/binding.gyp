# The TFTP data pump (see tftp_pump.c). Built by `npm run build:native` (scripts/setup runs it), not by
# npm install: node-gyp is pointed at this directory, so the root package stays a plain JS package.
{
  "targets": [
    {
      "target_name": "tftp_pump",
      "sources": ["tftp_pump.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wshadow", "-Wconversion", "-Wno-sign-conversion"]
    }
  ]
}
