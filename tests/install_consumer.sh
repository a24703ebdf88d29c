#!/usr/bin/env bash
# What a newcomer does after `cmake --install`: installs this build into a
# temporary prefix, then checks that
#   - expertcast.pc has plain paths (prefix=P, -IP/include, no "../");
#   - a program built with `pkg-config --cflags --libs expertcast` starts
#     without ldconfig or LD_LIBRARY_PATH, loads libexpertcast from P, and
#     finds the shipped profiles by name;
#   - a CMake project with find_package(expertcast) builds and runs;
#   - the installed CLI finds its profiles in P/share/expertcast from any
#     directory.
# usage: install_consumer.sh CMAKE_COMMAND BUILD_DIR
# Exits 77 (a skip for ctest) when pkg-config or a C compiler is missing.
set -euo pipefail
cmake=$1
build=$2
cc=${CC:-cc}
skip() { echo "$*: skipped"; echo "cases: 0 passed, 0 failed, 1 skipped"; exit 77; }
command -v pkg-config >/dev/null || skip "pkg-config is not installed"
command -v "$cc" >/dev/null || skip "no C compiler ($cc)"

tmp=$(mktemp -d /tmp/expertcast-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "install_consumer: $*" >&2; echo "cases: 0 passed, 1 failed, 0 skipped"; exit 1; }

"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log"; fail "cmake --install failed"; }
pc=$(find "$prefix" -name expertcast.pc | head -n 1)
[ -n "$pc" ] || fail "no expertcast.pc installed"
grep -qx "prefix=$prefix" "$pc" || fail "$pc: prefix is not $prefix: $(head -n 1 "$pc")"
if grep -q '\.\./' "$pc"; then fail "$pc has '../' in a path"; fi
export PKG_CONFIG_PATH=$(dirname "$pc")
cflags=$(pkg-config --cflags expertcast | sed 's/ *$//')
[ "$cflags" = "-I$prefix/include" ] || fail "pkg-config --cflags gives '$cflags'"

cat >"$tmp/app.c" <<'EOF'
#include <expertcast.h>
#include <stdio.h>
int main(void)
{
    ec_model_profile m;
    ec_hw_profile h;
    ec_error err = {0};
    if (ec_profiles_load("mixtral-8x7b-int4", "h100-pcie5", &m, &h, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    ec_backend *b = NULL;
    if (ec_backend_create("cpu", NULL, &b, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    printf("expertcast %s: %s %s, %d layers\n", ec_version(), m.name, m.dtype, m.n_layers);
    ec_backend_destroy(b);
    return 0;
}
EOF
# shellcheck disable=SC2046
"$cc" "$tmp/app.c" -o "$tmp/app" $(pkg-config --cflags --libs expertcast) ||
  fail "building with pkg-config failed"
out=$(cd / && env -u LD_LIBRARY_PATH "$tmp/app") || fail "the pkg-config program does not start"
[ "$out" = "expertcast 0.1.0: mixtral-8x7b int4, 32 layers" ] || fail "unexpected output: $out"
ldd "$tmp/app" | grep -q "libexpertcast.so.0 => $prefix/" ||
  fail "libexpertcast is not loaded from $prefix: $(ldd "$tmp/app" | grep expertcast)"

mkdir "$tmp/cm"
cp "$tmp/app.c" "$tmp/cm/app.c"
cat >"$tmp/cm/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(expertcast REQUIRED)
add_executable(app app.c)
target_link_libraries(app expertcast::expertcast)
EOF
"$cmake" -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/cm.log" 2>&1 &&
  "$cmake" --build "$tmp/cm/build" >>"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; fail "find_package consumer failed"; }
(cd / && "$tmp/cm/build/app" >/dev/null) || fail "the find_package program does not run"

# the installed CLI takes its profiles from its own installation
err=$(cd / && env -u EXPERTCAST_DATA -u EXPERTCAST_PROFILES "$prefix/bin/expertcast" simulate \
        "$prefix/share/expertcast/sample_trace.jsonl" --model nosuch --hardware h100-pcie5 2>&1) &&
  fail "an unknown model was accepted"
case $err in
  *"$prefix/bin/../share/expertcast/profiles"*) ;;
  *) fail "the installed CLI does not look in its own share/expertcast: $err" ;;
esac
(cd / && env -u EXPERTCAST_DATA "$prefix/bin/expertcast" simulate \
   "$prefix/share/expertcast/sample_trace.jsonl" --model mixtral-8x7b-int4 \
   --hardware h100-pcie5 --cache-experts 4 >/dev/null) || fail "the installed CLI's simulate failed"
echo "install_consumer: pkg-config and find_package consumers run from $prefix without ldconfig"
echo "cases: 1 passed, 0 failed, 0 skipped"
