/* The convolutions' epilogue on rows in cache, for the Cython kernels (included by their C
   blocks after they define FC_CLONES). */
#ifndef FC_EPILOGUE_H
#define FC_EPILOGUE_H

/* y[q*O + o] += b[o] for q < n (b NULL: skipped), then ReLU when relu (v < 0 -> 0: NaN stays
   NaN) */
#define FC_EPILOGUE(T)                                                                      \
FC_CLONES static void fc_epilogue_##T(Py_ssize_t n, Py_ssize_t O, const T* b, int relu,     \
                                      T* y) {                                               \
    for (Py_ssize_t q = 0; q < n; q++, y += O)                                              \
        for (Py_ssize_t o = 0; o < O; o++) {                                                \
            T v = b ? y[o] + b[o] : y[o];                                                   \
            y[o] = relu && v < 0 ? 0 : v;                                                   \
        }                                                                                   \
}
FC_EPILOGUE(float)
FC_EPILOGUE(double)
#endif
