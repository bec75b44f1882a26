# Compiler flags shared by every target (STYLE.md §10).
set(MOLMO_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
                   -Wmissing-prototypes -Wvla -Wno-unused-parameter)
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  # snprintf truncation is intended (messages are cut to one line) or checked through its
  # return value where a path must fit.
  list(APPEND MOLMO_WARNINGS -Wno-format-truncation)
endif()
add_compile_options("$<$<COMPILE_LANGUAGE:C>:${MOLMO_WARNINGS}>")
if(MOLMO_WERROR)
  add_compile_options(-Werror)
endif()
add_compile_options(-fno-strict-aliasing)

if(MOLMO_NATIVE)
  add_compile_options(-march=native)
else()
  add_compile_options(-march=x86-64-v2)
endif()

if(MOLMO_FUZZ)
  # Instrument everything for coverage; the fuzz targets add -fsanitize=fuzzer at link time.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

if(MOLMO_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# Reference kernels are the specification: no contraction into FMA, no fast-math (STYLE.md §7).
function(molmo_apply_source_flags target)
  file(GLOB_RECURSE ref_sources ${PROJECT_SOURCE_DIR}/src/kernels/ref/*.c)
  if(ref_sources)
    set_source_files_properties(${ref_sources} TARGET_DIRECTORY ${target}
                                PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
  endif()
  # x86 kernels: each ISA file gets its own target flags whatever -march says, so a portable
  # build still carries AVX2 and AVX-512 kernels (picked at run time from cpuid), and the AVX2
  # file never contains an AVX-512 instruction even under -march=native. No contraction: the
  # kernels place their FMAs explicitly and rely on separate rounding elsewhere (RoPE, adds).
  file(GLOB avx512_sources ${PROJECT_SOURCE_DIR}/src/kernels/x86/avx512*.c)
  file(GLOB avx2_sources ${PROJECT_SOURCE_DIR}/src/kernels/x86/avx2*.c)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    if(avx512_sources)
      set_source_files_properties(${avx512_sources} TARGET_DIRECTORY ${target} PROPERTIES
        COMPILE_OPTIONS "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mfma;-mf16c;-ffp-contract=off")
    endif()
    if(avx2_sources)
      set_source_files_properties(${avx2_sources} TARGET_DIRECTORY ${target} PROPERTIES
        COMPILE_OPTIONS "-mavx2;-mfma;-mf16c;-mno-avx512f;-ffp-contract=off")
    endif()
  elseif(avx512_sources OR avx2_sources)
    set_source_files_properties(${avx512_sources} ${avx2_sources} TARGET_DIRECTORY ${target}
                                PROPERTIES HEADER_FILE_ONLY ON)
  endif()
endfunction()
