#!/usr/bin/env bash
# The install consumer test (ctest install_consumer): installs a build tree into a fresh
# prefix and builds tests/install/consumer against it as a user would, twice: with CMake
# (find_package(amqp CONFIG)) and with pkg-config (--static). Also checks what is
# installed: the files of each library, no internal header, and no installed header but the
# opt-in amqp/transport/asio.hpp reaching Asio.
#
#   run.sh BUILD_DIR WORK_DIR CXX [LAUNCHER]
set -euo pipefail
build=$1
work=$2
cxx=$3
launcher=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
prefix=$work/prefix

fail() {
  echo "install test: $*" >&2
  exit 1
}

rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" ||
  { cat "$work/install.log" >&2; fail "cmake --install failed"; }

echo "-- installed files"
for f in lib/libamqp.a lib/libamqp_trace.a lib/libamqp_transport.a lib/libamqp_broker.a bin/amqp-cli \
  lib/cmake/amqp/amqp-config.cmake lib/cmake/amqp/amqp-config-version.cmake \
  lib/pkgconfig/amqp.pc lib/pkgconfig/amqp-transport.pc lib/pkgconfig/amqp-broker.pc \
  include/amqp/connection.hpp include/amqp/broker.hpp include/amqp/transport/client.hpp; do
  [ -e "$prefix/$f" ] || fail "$f is not installed"
done
others=$(cd "$prefix" && find . -type f | grep -v -E '^\./(include/amqp/.*\.hpp|lib/lib[a-z_]+\.a|bin/amqp-cli|lib/cmake/amqp/amqp-[a-z-]+\.cmake|lib/pkgconfig/amqp(-[a-z]+)?\.pc)$' || true)
[ -z "$others" ] || fail "unexpected files installed: $others"

echo "-- installed headers: they compile together, none but asio.hpp includes Asio"
headers=$(cd "$prefix/include" && find amqp -name '*.hpp' ! -path amqp/transport/asio.hpp | sort)
for h in $headers; do echo "#include <$h>"; done >"$work/all_headers.cpp"
# -MD lists every header the translation unit reads.
$cxx -std=c++20 -Wall -Wextra -Werror -I"$prefix/include" -fsyntax-only -MD -MF "$work/all_headers.d" \
  "$work/all_headers.cpp" || fail "the installed headers do not compile together"
if grep -q '/asio[/.]' "$work/all_headers.d"; then
  fail "an installed header other than amqp/transport/asio.hpp includes Asio:" \
    "$(grep -o '[^ ]*/asio[/.][^ ]*' "$work/all_headers.d" | head -3)"
fi
# The opt-in header compiles with the installed tree and (standalone) Asio.
echo '#include <amqp/transport/asio.hpp>' >"$work/asio_header.cpp"
$cxx -std=c++20 -Wall -Wextra -Werror -I"$prefix/include" -fsyntax-only "$work/asio_header.cpp" ||
  fail "amqp/transport/asio.hpp does not compile with Asio"

echo "-- CMake consumer: find_package(amqp CONFIG COMPONENTS core transport broker)"
cmake_args=(-S "$here/consumer" -B "$work/cmake" -G Ninja -DCMAKE_PREFIX_PATH="$prefix"
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror")
[ -n "$launcher" ] && cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher")
cmake "${cmake_args[@]}" >"$work/cmake.log" || { cat "$work/cmake.log" >&2; fail "configure failed"; }
cmake --build "$work/cmake" >"$work/cmake_build.log" ||
  { cat "$work/cmake_build.log" >&2; fail "build failed"; }
"$work/cmake/consumer"

echo "-- pkg-config consumer: amqp-transport amqp-broker, --static"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion amqp)" = "$(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/amqp.pc")" ] ||
  fail "pkg-config --modversion amqp"
core_libs=$(pkg-config --libs amqp)
case " $core_libs " in *" -lamqp "*) ;; *) fail "pkg-config --libs amqp: $core_libs" ;; esac
static_libs=$(pkg-config --static --libs amqp-transport amqp-broker)
for l in -lamqp_transport -lamqp_broker -lamqp -lssl -lcrypto -pthread; do
  case " $static_libs " in *" $l "*) ;; *) fail "pkg-config --static --libs lacks $l: $static_libs" ;; esac
done
# shellcheck disable=SC2046 # word splitting of the flags is wanted
$launcher $cxx -std=c++20 -Wall -Wextra -Werror $(pkg-config --cflags amqp-transport amqp-broker) \
  -c "$here/consumer/main.cpp" -o "$work/pc_consumer.o"
# shellcheck disable=SC2086
$cxx "$work/pc_consumer.o" -o "$work/pc_consumer" $static_libs
"$work/pc_consumer"
echo "install test: ok"
