# Every dependency is a Debian bookworm package (see scripts/deps.sh); nothing is downloaded.
find_package(Boost 1.81 EXACT REQUIRED COMPONENTS json url)
find_package(yaml-cpp REQUIRED)
find_package(Threads REQUIRED)
# libpq-dev 15: the shard router's client (async + pipeline mode); the config checks connection strings with it.
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
if(NOT VIREX_FUZZ)
  pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)   # libpqxx-dev 6.4: the blocking `shards` tooling only
endif()
if(NOT VIREX_FUZZ)
  find_package(spdlog REQUIRED)
  find_package(CLI11 CONFIG REQUIRED)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
  pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)   # libhiredis-dev 0.14 (the regional tier)
  # TLS termination (libssl-dev, OpenSSL 3) and HTTP/2 (libnghttp2-dev).
  find_package(OpenSSL 3.0 REQUIRED)
  pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)
  # OTLP/gRPC trace export (proto/, src/observe/otlp_*): libprotobuf-dev protobuf-compiler libgrpc++-dev
  # protobuf-compiler-grpc. gRPC's CMake package brings gRPC::grpc++ and gRPC::grpc_cpp_plugin.
  find_package(Protobuf REQUIRED)
  find_package(gRPC CONFIG REQUIRED)
  if(VIREX_TESTS)
    find_package(GTest REQUIRED)
  endif()
  if(VIREX_BENCH)
    find_package(benchmark REQUIRED)
  endif()
endif()
