"""Triton kernels of non-causal FlashAttention-2, forward and backward (imported lazily by attention.py).

Layout: q, k, v, o, do are (B, H, N, D) with arbitrary strides (q/k/v are usually views of one qkv
projection); lse and delta are fp32 [B*H, N]. One program works on one (batch*head, row block).
The head dim D is padded to BLOCK_D (a power of two >= 16) inside the kernel only: loads past D read
zeros (which add nothing to any dot product) and stores past D are masked, so D=80 runs as 128 wide
without copying the tensors. Scores are kept in base 2: s2 = (q.k) * scale * log2(e), lse2 = log2(sum 2^s2),
so softmax(p) = exp2(s2 - lse2).
"""

import triton
import triton.language as tl


@triton.jit
def _tile_ptrs(base, offs_rows, offs_d, stride_n, stride_d):
    # [ROWS, BLOCK_D] pointers of one (batch, head) slice.
    return base + offs_rows[:, None] * stride_n + offs_d[None, :] * stride_d


@triton.jit
def attn_fwd_kernel(
    Q, K, V, OUT, LSE,
    sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sob, soh, son, sod,
    H, N, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_b = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    q_base = Q + off_b * sqb + off_h * sqh
    k_base = K + off_b * skb + off_h * skh
    v_base = V + off_b * svb + off_h * svh
    o_base = OUT + off_b * sob + off_h * soh

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    m_ok = offs_m < N

    q = tl.load(_tile_ptrs(q_base, offs_m, offs_d, sqn, sqd), mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running row max of s2
    l_i = tl.zeros([BLOCK_M], tl.float32)  # running row sum of 2^(s2 - m_i)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(0, N, BLOCK_N):
        n_idx = start_n + offs_n
        n_ok = n_idx < N
        kv_mask = n_ok[:, None] & d_ok[None, :]
        k = tl.load(_tile_ptrs(k_base, n_idx, offs_d, skn, skd), mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # [BLOCK_M, BLOCK_N]
        s = tl.where(n_ok[None, :], s, float("-inf"))  # keys past N take no weight
        m_new = tl.maximum(m_i, tl.max(s, 1))  # finite: block 0 always holds key 0
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(_tile_ptrs(v_base, n_idx, offs_d, svn, svd), mask=kv_mask, other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    acc = acc / l_i[:, None]
    o_mask = m_ok[:, None] & d_ok[None, :]
    tl.store(_tile_ptrs(o_base, offs_m, offs_d, son, sod), acc.to(OUT.dtype.element_ty), mask=o_mask)
    tl.store(LSE + off_hz.to(tl.int64) * N + offs_m, m_i + tl.log2(l_i), mask=m_ok)


@triton.jit
def attn_bwd_delta_kernel(
    OUT, DO, DELTA,
    sob, soh, son, sod, sdb, sdh, sdn, sdd,
    H, N,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
):
    # delta[i] = sum_d dO[i, d] * OUT[i, d] = sum_j P[i, j] dP[i, j]: the softmax-backward row term.
    pid_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_b = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_ok = offs_m < N
    mask = m_ok[:, None] & (offs_d < HEAD_DIM)[None, :]
    o = tl.load(_tile_ptrs(OUT + off_b * sob + off_h * soh, offs_m, offs_d, son, sod), mask=mask, other=0.0)
    do = tl.load(_tile_ptrs(DO + off_b * sdb + off_h * sdh, offs_m, offs_d, sdn, sdd), mask=mask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + off_hz.to(tl.int64) * N + offs_m, delta, mask=m_ok)


@triton.jit
def attn_bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV,
    sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sdb, sdh, sdn, sdd,
    H, N, qk_scale, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):
    # One program owns BLOCK_N keys and loops over all query blocks; works on transposed scores
    # sT [BLOCK_N, BLOCK_M] so dV = P^T dO and dK = dS^T Q need no transposes of the accumulators.
    # DK, DV are contiguous (B, H, N, D).
    pid_n = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_b = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    q_base = Q + off_b * sqb + off_h * sqh
    do_base = DO + off_b * sdb + off_h * sdh
    row_base = off_hz.to(tl.int64) * N

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    kv_mask = (offs_n < N)[:, None] & d_ok[None, :]
    k = tl.load(_tile_ptrs(K + off_b * skb + off_h * skh, offs_n, offs_d, skn, skd), mask=kv_mask, other=0.0)
    v = tl.load(_tile_ptrs(V + off_b * svb + off_h * svh, offs_n, offs_d, svn, svd), mask=kv_mask, other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    for start_m in range(0, N, BLOCK_M):
        m_idx = start_m + offs_m
        m_ok = m_idx < N
        q_mask = m_ok[:, None] & d_ok[None, :]
        q = tl.load(_tile_ptrs(q_base, m_idx, offs_d, sqn, sqd), mask=q_mask, other=0.0)
        do = tl.load(_tile_ptrs(do_base, m_idx, offs_d, sdn, sdd), mask=q_mask, other=0.0)
        # lse = +inf past N makes those probabilities exactly 0 (their q and dO rows are 0 too).
        lse = tl.load(LSE + row_base + m_idx, mask=m_ok, other=float("inf"))
        delta = tl.load(DELTA + row_base + m_idx, mask=m_ok, other=0.0)
        sT = tl.dot(k, tl.trans(q), input_precision=PRECISION) * qk_scale  # [BLOCK_N, BLOCK_M]
        pT = tl.exp2(sT - lse[None, :])
        dv += tl.dot(pT.to(do.dtype), do, input_precision=PRECISION)
        dpT = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        dsT = pT * (dpT - delta[None, :])
        dk += tl.dot(dsT.to(q.dtype), q, input_precision=PRECISION)
    out_off = row_base * HEAD_DIM
    out_ptrs = offs_n[:, None] * HEAD_DIM + offs_d[None, :]
    tl.store(DK + out_off + out_ptrs, (dk * sm_scale).to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + out_off + out_ptrs, dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.jit
def attn_bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ,
    sqb, sqh, sqn, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sdb, sdh, sdn, sdd,
    H, N, qk_scale, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):
    # One program owns BLOCK_M queries and loops over all key blocks: dQ = dS K, no atomics, deterministic.
    # DQ is contiguous (B, H, N, D).
    pid_m = tl.program_id(0)
    off_hz = tl.program_id(1)
    off_b = (off_hz // H).to(tl.int64)
    off_h = (off_hz % H).to(tl.int64)
    k_base = K + off_b * skb + off_h * skh
    v_base = V + off_b * svb + off_h * svh
    row_base = off_hz.to(tl.int64) * N

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    m_ok = offs_m < N
    q_mask = m_ok[:, None] & d_ok[None, :]
    q = tl.load(_tile_ptrs(Q + off_b * sqb + off_h * sqh, offs_m, offs_d, sqn, sqd), mask=q_mask, other=0.0)
    do = tl.load(_tile_ptrs(DO + off_b * sdb + off_h * sdh, offs_m, offs_d, sdn, sdd), mask=q_mask, other=0.0)
    lse = tl.load(LSE + row_base + offs_m, mask=m_ok, other=float("inf"))
    delta = tl.load(DELTA + row_base + offs_m, mask=m_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(0, N, BLOCK_N):
        n_idx = start_n + offs_n
        n_ok = n_idx < N
        kv_mask = n_ok[:, None] & d_ok[None, :]
        k = tl.load(_tile_ptrs(k_base, n_idx, offs_d, skn, skd), mask=kv_mask, other=0.0)
        v = tl.load(_tile_ptrs(v_base, n_idx, offs_d, svn, svd), mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # [BLOCK_M, BLOCK_N]
        # Keys past N read as 0 and would get weight 2^(0 - lse): zero them explicitly (lse can be << 0).
        p = tl.where(n_ok[None, :], tl.exp2(s - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    out_ptrs = row_base * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    tl.store(DQ + out_ptrs, (dq * sm_scale).to(DQ.dtype.element_ty), mask=q_mask)
