/* Instruction sets of the Cython kernels (included by their C blocks).

   With GCC >= 12 on x86-64 and glibc (GNU ifuncs), an FC_CLONES function is compiled for
   AVX2+FMA (x86-64-v3) and for the build's baseline, the CPU choosing at load time (an AVX-512
   clone of these 32-byte-vector kernels measured no faster, and the max-pool gradient's loops
   0.75x); an FC_WIDE function (64-byte vectors) for AVX-512 (x86-64-v4) only, so it is called
   only where fc_wide() says the CPU runs it. A build for a CPU that has AVX2
   (FASTCONV_NATIVE=1) takes its own flags as they are; Clang and older GCC build the baseline
   only and never run FC_WIDE. */
#ifndef FC_ISA_H
#define FC_ISA_H
#if defined(__x86_64__) && defined(__GLIBC__) && !defined(__clang__) && __GNUC__ >= 12
  #define FC_IFUNCS 1
#else
  #define FC_IFUNCS 0
#endif
#if FC_IFUNCS && !defined(__AVX2__)
  #define FC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
  #define FC_CLONES
#endif
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
  #define FC_WIDE
  static inline int fc_wide(void) { return 1; }
#elif FC_IFUNCS
  #define FC_WIDE __attribute__((target("arch=x86-64-v4")))
  static inline int fc_wide(void) { return __builtin_cpu_supports("x86-64-v4"); }
#else
  #define FC_WIDE
  static inline int fc_wide(void) { return 0; }
#endif
#endif
