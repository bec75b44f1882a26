# Debian packages found through pkg-config (scripts/setup.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(JANSSON  REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(PCRE2    REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(JPEG     REQUIRED IMPORTED_TARGET libjpeg)
pkg_check_modules(SPNG     REQUIRED IMPORTED_TARGET spng)
pkg_check_modules(WEBP     REQUIRED IMPORTED_TARGET libwebp libwebpdemux)
pkg_check_modules(CURL     REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(CRYPTO   REQUIRED IMPORTED_TARGET libcrypto)
pkg_check_modules(MHD      REQUIRED IMPORTED_TARGET libmicrohttpd)
pkg_check_modules(FREETYPE REQUIRED IMPORTED_TARGET freetype2)

add_library(molmo_deps INTERFACE)
target_link_libraries(molmo_deps INTERFACE
  PkgConfig::JANSSON PkgConfig::PCRE2 PkgConfig::UTF8PROC PkgConfig::JPEG PkgConfig::SPNG
  PkgConfig::WEBP PkgConfig::CURL PkgConfig::CRYPTO PkgConfig::MHD PkgConfig::FREETYPE
  Threads::Threads m)
