#!/usr/bin/env bash
# Install as a C library: `cmake --install` with DESTDIR into a temporary
# root, then build examples/mnist_mlp.c from the installed files alone, once
# with `pkg-config --cflags --libs ampc` and once with a two-line CMake
# project (find_package + target_link_libraries), and run both.
set -u
ampc="$1"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
src="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(dirname "$ampc")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"
prefix=/usr/local
# Extra compiler flags for programs built against the library (a sanitizer
# build's library needs the sanitizer runtime linked into the program).
extra=${AMPC_TEST_CFLAGS:-}

if DESTDIR="$root" cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then ok; else
  bad "cmake --install failed: $(tail -5 "$tmp/install.log")"
fi
libdir=$(dirname "$(find "$root" -name ampc.pc | head -1)")/..
for f in "$root$prefix/include/ampc.h" "$libdir/libampc.a" "$root$prefix/bin/ampc" \
  "$root$prefix/share/man/man1/ampc.1"; do
  [ -f "$f" ] && ok || bad "not installed: $f"
done
soname=$(objdump -p "$libdir/libampc.so" 2>/dev/null | sed -n 's/ *SONAME *//p')
[ "$soname" = "libampc.so.0" ] && ok || bad "SONAME is '$soname', want libampc.so.0"

# The example's run: no data there, so it must fail with its own message,
# which proves the program was linked and its library loaded.
run_example() {
  local exe=$1 out
  out=$(LD_LIBRARY_PATH="$libdir" "$exe" "$tmp/no-data" 2>&1)
  if [ $? -ne 0 ] && printf '%s' "$out" | grep -qi "mnist\|no-data"; then ok; else
    bad "$exe did not run as expected: $out"
  fi
}

# 1. pkg-config, from the installed .pc alone.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs ampc 2>&1) && ok || bad "pkg-config: $flags"
# shellcheck disable=SC2086
if cc -std=c11 $extra -o "$tmp/ex_pc" "$src/examples/mnist_mlp.c" $flags 2>"$tmp/cc.log"; then ok; else
  bad "build with pkg-config flags '$flags' failed: $(cat "$tmp/cc.log")"
fi
[ -x "$tmp/ex_pc" ] && run_example "$tmp/ex_pc"

# 2. CMake: find_package(ampc) and ampc::ampc.
mkdir -p "$tmp/app"
cp "$src/examples/mnist_mlp.c" "$tmp/app/"
cat >"$tmp/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(app C)
find_package(ampc REQUIRED)
add_executable(app mnist_mlp.c)
target_link_libraries(app ampc::ampc)
CM
if cmake -S "$tmp/app" -B "$tmp/app/build" -DCMAKE_PREFIX_PATH="$root$prefix" \
  -DCMAKE_C_FLAGS="$extra" >"$tmp/cm.log" 2>&1 &&
  cmake --build "$tmp/app/build" >>"$tmp/cm.log" 2>&1; then ok; else
  bad "CMake consumer failed: $(tail -15 "$tmp/cm.log")"
fi
[ -x "$tmp/app/build/app" ] && run_example "$tmp/app/build/app"
finish
