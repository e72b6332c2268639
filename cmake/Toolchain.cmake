# Compiler launcher (ccache), linker (mold), warnings and sanitizer flags for every target.
find_program(VIREX_CCACHE ccache)
if(VIREX_CCACHE)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${VIREX_CCACHE})
endif()
find_program(VIREX_MOLD mold)
if(VIREX_MOLD)
  add_link_options(-fuse-ld=mold)
endif()

add_compile_options(-Wall -Wextra -Wno-unused-parameter)
# Asio/Beast: compiled once in virex_asio (separate compilation), never per translation unit.
add_compile_definitions(BOOST_ASIO_SEPARATE_COMPILATION BOOST_BEAST_SEPARATE_COMPILATION
                        BOOST_ASIO_NO_DEPRECATED BOOST_ASIO_DISABLE_BOOST_COROUTINE)
# Asio recycles handler and coroutine-frame memory per thread in a small cache (2 blocks per purpose by
# default). A proxied request keeps more alive at once (the connection's frame, the exchange's, one stage's,
# the operation's): with 2, callgrind showed ~4.6 aligned allocations per request; 8 keeps them recycled.
add_compile_definitions(BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=8)

if(VIREX_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
# ThreadSanitizer build (preset tsan): the concurrent parts — the edge-cache store, the cluster state's atomics —
# under their multi-threaded unit tests. Only those targets are built (CMakePresets.json).
option(VIREX_TSAN "Build with ThreadSanitizer" OFF)
if(VIREX_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()
if(VIREX_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "VIREX_FUZZ needs clang (CXX=clang++-14)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
