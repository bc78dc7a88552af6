"""Triton kernels of non-causal FlashAttention-2, forward and backward (imported lazily by attention.py).

Layout: q, k, v, o, do are (B, H, N, D) with arbitrary strides (q/k/v are usually views of one qkv
projection); lse and delta are fp32 [B*H, N]. One program works on one (batch*head, row block).

Head dim: a tile's D columns are held as a head part of DA columns (a power of two) plus, when D is not a
power of two, a tail part of DB columns: D=80 is 64 + 16, so its products cost 80 columns, not the 128 of
padding to the next power of two. Columns past D (DA + DB > D, e.g. D=72 as 64 + 16) read as zeros, which
add nothing to any product, and are never stored; the tensors are never copied or padded in memory.

Scores are kept in base 2: s2 = (q.k) * scale * log2(e), lse2 = log2(sum_j 2^s2), p = exp2(s2 - lse2).
"""

import triton
import triton.language as tl


@triton.jit
def _load(base, rows, row_ok, stride_n, stride_d,
          D0: tl.constexpr, WIDTH: tl.constexpr, HEAD_DIM: tl.constexpr):
    # [ROWS, WIDTH] tile of columns D0 .. D0 + WIDTH of one (batch, head) slice; zeros past N and past D.
    cols = D0 + tl.arange(0, WIDTH)
    mask = row_ok[:, None] & (cols < HEAD_DIM)[None, :]
    return tl.load(base + rows[:, None] * stride_n + cols[None, :] * stride_d, mask=mask, other=0.0)


@triton.jit
def _store(base, value, rows, row_ok, D0: tl.constexpr, WIDTH: tl.constexpr, HEAD_DIM: tl.constexpr):
    # Into a contiguous (.., N, HEAD_DIM) slice.
    cols = D0 + tl.arange(0, WIDTH)
    mask = row_ok[:, None] & (cols < HEAD_DIM)[None, :]
    tl.store(base + rows[:, None] * HEAD_DIM + cols[None, :], value.to(base.dtype.element_ty), mask=mask)


@triton.jit
def attn_fwd_kernel(
    Q, K, V, OUT, LSE,
    sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
    H, N, qk_scale,
    HEAD_DIM: tl.constexpr, DA: tl.constexpr, DB: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):
    # OUT is contiguous (B, H, N, D).
    pid_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_b = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    q_base = Q + off_b * sqb + off_h * sqh
    k_base = K + off_b * skb + off_h * skh
    v_base = V + off_b * svb + off_h * svh
    row_base = off_hz.to(tl.int64) * N

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < N
    q_a = _load(q_base, offs_m, m_ok, sqn, sqd, 0, DA, HEAD_DIM)
    acc_a = tl.zeros([BLOCK_M, DA], tl.float32)
    if DB > 0:
        q_b = _load(q_base, offs_m, m_ok, sqn, sqd, DA, DB, HEAD_DIM)
        acc_b = tl.zeros([BLOCK_M, DB], tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running row max of s2
    l_i = tl.zeros([BLOCK_M], tl.float32)  # running row sum of 2^(s2 - m_i)
    for start_n in range(0, N, BLOCK_N):
        n_idx = start_n + tl.arange(0, BLOCK_N)
        n_ok = n_idx < N
        k_a = _load(k_base, n_idx, n_ok, skn, skd, 0, DA, HEAD_DIM)
        s = tl.dot(q_a, tl.trans(k_a), input_precision=PRECISION)  # [BLOCK_M, BLOCK_N]
        if DB > 0:
            k_b = _load(k_base, n_idx, n_ok, skn, skd, DA, DB, HEAD_DIM)
            s = tl.dot(q_b, tl.trans(k_b), s, input_precision=PRECISION)
        s = tl.where(n_ok[None, :], s * qk_scale, float("-inf"))  # keys past N take no weight
        m_new = tl.maximum(m_i, tl.max(s, 1))  # finite: block 0 always holds key 0
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v_a = _load(v_base, n_idx, n_ok, svn, svd, 0, DA, HEAD_DIM)
        p_in = p.to(v_a.dtype)
        acc_a = tl.dot(p_in, v_a, acc_a * alpha[:, None], input_precision=PRECISION)
        if DB > 0:
            v_b = _load(v_base, n_idx, n_ok, svn, svd, DA, DB, HEAD_DIM)
            acc_b = tl.dot(p_in, v_b, acc_b * alpha[:, None], input_precision=PRECISION)
        m_i = m_new
    o_base = OUT + row_base * HEAD_DIM
    _store(o_base, acc_a / l_i[:, None], offs_m, m_ok, 0, DA, HEAD_DIM)
    if DB > 0:
        _store(o_base, acc_b / l_i[:, None], offs_m, m_ok, DA, DB, HEAD_DIM)
    tl.store(LSE + row_base + offs_m, m_i + tl.log2(l_i), mask=m_ok)


@triton.jit
def attn_bwd_delta_kernel(
    OUT, DO, DELTA,
    sdb, sdh, sdn, sdd,
    H, N,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
):
    # delta[i] = sum_d dO[i, d] O[i, d] = sum_j P[i, j] dP[i, j], the softmax-backward row term.
    # OUT is contiguous (B, H, N, D); memory-bound, so one power-of-two tile of BLOCK_D >= D columns.
    pid_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_b = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < N
    row_base = off_hz.to(tl.int64) * N
    o = _load(OUT + row_base * HEAD_DIM, offs_m, m_ok, HEAD_DIM, 1, 0, BLOCK_D, HEAD_DIM)
    do = _load(DO + off_b * sdb + off_h * sdh, offs_m, m_ok, sdn, sdd, 0, BLOCK_D, HEAD_DIM)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + row_base + offs_m, delta, mask=m_ok)


@triton.jit
def attn_bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV,
    sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sdb, sdh, sdn, sdd,
    H, N, qk_scale, sm_scale,
    HEAD_DIM: tl.constexpr, DA: tl.constexpr, DB: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):
    # One program owns BLOCK_N keys and loops over all query blocks. It works on transposed scores
    # sT [BLOCK_N, BLOCK_M], so dV = P^T dO and dK = dS^T Q accumulate without transposing.
    # DK, DV are contiguous (B, H, N, D).
    pid_n = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_b = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    q_base = Q + off_b * sqb + off_h * sqh
    do_base = DO + off_b * sdb + off_h * sdh
    k_base = K + off_b * skb + off_h * skh
    v_base = V + off_b * svb + off_h * svh
    row_base = off_hz.to(tl.int64) * N

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < N
    k_a = _load(k_base, offs_n, n_ok, skn, skd, 0, DA, HEAD_DIM)
    v_a = _load(v_base, offs_n, n_ok, svn, svd, 0, DA, HEAD_DIM)
    dk_a = tl.zeros([BLOCK_N, DA], tl.float32)
    dv_a = tl.zeros([BLOCK_N, DA], tl.float32)
    if DB > 0:
        k_b = _load(k_base, offs_n, n_ok, skn, skd, DA, DB, HEAD_DIM)
        v_b = _load(v_base, offs_n, n_ok, svn, svd, DA, DB, HEAD_DIM)
        dk_b = tl.zeros([BLOCK_N, DB], tl.float32)
        dv_b = tl.zeros([BLOCK_N, DB], tl.float32)
    for start_m in range(0, N, BLOCK_M):
        m_idx = start_m + tl.arange(0, BLOCK_M)
        m_ok = m_idx < N
        q_a = _load(q_base, m_idx, m_ok, sqn, sqd, 0, DA, HEAD_DIM)
        do_a = _load(do_base, m_idx, m_ok, sdn, sdd, 0, DA, HEAD_DIM)
        # lse = +inf past N makes those probabilities exactly 0 (their q and dO rows are 0 too).
        lse = tl.load(LSE + row_base + m_idx, mask=m_ok, other=float("inf"))
        delta = tl.load(DELTA + row_base + m_idx, mask=m_ok, other=0.0)
        sT = tl.dot(k_a, tl.trans(q_a), input_precision=PRECISION)  # [BLOCK_N, BLOCK_M]
        dpT = tl.dot(v_a, tl.trans(do_a), input_precision=PRECISION)
        if DB > 0:
            q_b = _load(q_base, m_idx, m_ok, sqn, sqd, DA, DB, HEAD_DIM)
            do_b = _load(do_base, m_idx, m_ok, sdn, sdd, DA, DB, HEAD_DIM)
            sT = tl.dot(k_b, tl.trans(q_b), sT, input_precision=PRECISION)
            dpT = tl.dot(v_b, tl.trans(do_b), dpT, input_precision=PRECISION)
        pT = tl.exp2(sT * qk_scale - lse[None, :])
        dsT = pT * (dpT - delta[None, :])
        p_in = pT.to(do_a.dtype)
        ds_in = dsT.to(q_a.dtype)
        dv_a = tl.dot(p_in, do_a, dv_a, input_precision=PRECISION)
        dk_a = tl.dot(ds_in, q_a, dk_a, input_precision=PRECISION)
        if DB > 0:
            dv_b = tl.dot(p_in, do_b, dv_b, input_precision=PRECISION)
            dk_b = tl.dot(ds_in, q_b, dk_b, input_precision=PRECISION)
    out_base = row_base * HEAD_DIM
    _store(DK + out_base, dk_a * sm_scale, offs_n, n_ok, 0, DA, HEAD_DIM)
    _store(DV + out_base, dv_a, offs_n, n_ok, 0, DA, HEAD_DIM)
    if DB > 0:
        _store(DK + out_base, dk_b * sm_scale, offs_n, n_ok, DA, DB, HEAD_DIM)
        _store(DV + out_base, dv_b, offs_n, n_ok, DA, DB, HEAD_DIM)


@triton.jit
def attn_bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ,
    sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sdb, sdh, sdn, sdd,
    H, N, qk_scale, sm_scale,
    HEAD_DIM: tl.constexpr, DA: tl.constexpr, DB: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):
    # One program owns BLOCK_M queries and loops over all key blocks: dQ = dS K without atomics, so the
    # backward is deterministic. DQ is contiguous (B, H, N, D).
    pid_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_b = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    q_base = Q + off_b * sqb + off_h * sqh
    do_base = DO + off_b * sdb + off_h * sdh
    k_base = K + off_b * skb + off_h * skh
    v_base = V + off_b * svb + off_h * svh
    row_base = off_hz.to(tl.int64) * N

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < N
    q_a = _load(q_base, offs_m, m_ok, sqn, sqd, 0, DA, HEAD_DIM)
    do_a = _load(do_base, offs_m, m_ok, sdn, sdd, 0, DA, HEAD_DIM)
    dq_a = tl.zeros([BLOCK_M, DA], tl.float32)
    if DB > 0:
        q_b = _load(q_base, offs_m, m_ok, sqn, sqd, DA, DB, HEAD_DIM)
        do_b = _load(do_base, offs_m, m_ok, sdn, sdd, DA, DB, HEAD_DIM)
        dq_b = tl.zeros([BLOCK_M, DB], tl.float32)
    lse = tl.load(LSE + row_base + offs_m, mask=m_ok, other=float("inf"))
    delta = tl.load(DELTA + row_base + offs_m, mask=m_ok, other=0.0)
    for start_n in range(0, N, BLOCK_N):
        n_idx = start_n + tl.arange(0, BLOCK_N)
        n_ok = n_idx < N
        k_a = _load(k_base, n_idx, n_ok, skn, skd, 0, DA, HEAD_DIM)
        v_a = _load(v_base, n_idx, n_ok, svn, svd, 0, DA, HEAD_DIM)
        s = tl.dot(q_a, tl.trans(k_a), input_precision=PRECISION)  # [BLOCK_M, BLOCK_N]
        dp = tl.dot(do_a, tl.trans(v_a), input_precision=PRECISION)
        if DB > 0:
            k_b = _load(k_base, n_idx, n_ok, skn, skd, DA, DB, HEAD_DIM)
            v_b = _load(v_base, n_idx, n_ok, svn, svd, DA, DB, HEAD_DIM)
            s = tl.dot(q_b, tl.trans(k_b), s, input_precision=PRECISION)
            dp = tl.dot(do_b, tl.trans(v_b), dp, input_precision=PRECISION)
        # Keys past N read as 0 and would get weight 2^(0 - lse): zero them (lse can be << 0).
        p = tl.where(n_ok[None, :], tl.exp2(s * qk_scale - lse[:, None]), 0.0)
        ds_in = (p * (dp - delta[:, None])).to(k_a.dtype)
        dq_a = tl.dot(ds_in, k_a, dq_a, input_precision=PRECISION)
        if DB > 0:
            dq_b = tl.dot(ds_in, k_b, dq_b, input_precision=PRECISION)
    out_base = DQ + row_base * HEAD_DIM
    _store(out_base, dq_a * sm_scale, offs_m, m_ok, 0, DA, HEAD_DIM)
    if DB > 0:
        _store(out_base, dq_b * sm_scale, offs_m, m_ok, DA, DB, HEAD_DIM)
