// The streaming step of populations of RTU-RTRL networks (and of the GRU / FFN TBPTT(1) baselines, at the end),
// written as plain loops (rtu_core/engines/native/__init__.py). Names follow the Python's: γ, the RTU's input
// scale, is ``input_scale`` (the discount is ``gamma``, as in TrainConfig).
//
// Equations: docs/method.md §2 (network, exact RTRL), §4 (ObGD, QRC(λ)). One network per population member p;
// every parameter of member p lives in row p of a flat (P, N) buffer, in MemoryNetwork.parameters() order:
//   feature block i: W_i (out_i x in_i), b_i (out_i);  RTU: nu_log (n), theta_log (n), B_real (n x d), B_imag (n x d);
//   head: [W_h (Hw x 2n), b_h (Hw) when the head has a hidden block of width Hw,] W_o (A x (Hw or 2n)), b_o (A)
//   [+ anything the caller appends after the network, e.g. a Gaussian log-std].
// Complex numbers are (re, im) pairs. Loops run member by member in a fixed order on one thread, so member p's
// numbers do not depend on the population around it (a population member equals its solo run bit for bit).
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

namespace {

constexpr double kLayerNormEps = 1e-5;
constexpr double kLeakySlope = 0.01;
constexpr double kInputScaleEps = 1e-8;
// The linear RTU's S^B_imag = i S^B_real, at every step. Both start at 0 (and are zeroed together at
// episode starts), and they follow the same recurrence S ← λ S + J with J^B_imag = iγx = i J^B_real. So the loops
// write S^B_imag from S^B_real and never read it: a quarter less memory traffic for the sensitivities, which are
// the largest state. The nonlinear RTU's D_t treats real and imaginary parts apart, so it keeps both.

// The paper's first-order Taylor correction of the linear RTU's sensitivities (docs/method.md §3): C, shaped like S
// (the same identity C^B_imag = i C^B_real holds), and each member's RTU parameters at its previous advance, a
// (P, 2n + 2nd) copy of the row's [ν_log, θ_log, B_real, B_imag] columns, from which Δθ_t = θ_t - θ_{t-1}. Gradients
// use S + C. Null pointers: no correction.
template <typename T>
struct Taylor {
  T *nu = nullptr, *theta = nullptr, *br = nullptr, *bi = nullptr, *previous = nullptr;
};

// The head after the cell's output y (Y values): with a hidden block of width Hw > 0, z = f(LayerNorm(W_h y + b_h))
// and out = W_o z + b_o (the feature blocks' equations); with Hw = 0, out = W_o y + b_o.
struct HeadLayout {
  int64_t Y = 0, Hw = 0, A = 0;
  int64_t Wh = 0, bh = 0, Wo = 0, bo = 0;
  std::vector<int64_t> block_dims, block_W, block_b;  // the hidden block as features_forward takes blocks
  int64_t read() const { return Hw ? Hw : Y; }  // what W_o reads
  // lay the head out from row offset ``off``; returns the offset after it
  int64_t place(int64_t Y_, int64_t Hw_, int64_t A_, int64_t off) {
    Y = Y_;
    Hw = Hw_;
    A = A_;
    if (Hw) {
      Wh = off; off += Hw * Y;
      bh = off; off += Hw;
      block_dims = {Y, Hw};
      block_W = {Wh};
      block_b = {bh};
    }
    Wo = off; off += A * read();
    bo = off; off += A;
    return off;
  }
};

struct Layout {
  std::vector<int64_t> dims;  // O, W_1, ..., W_L (feature block widths); d = W_L
  int64_t n, A, N;            // RTU units, outputs, flat row length (>= the network's own parameters)
  int64_t blocks() const { return (int64_t)dims.size() - 1; }
  int64_t d() const { return dims.back(); }
  // offsets of the parameters in a row
  std::vector<int64_t> W, b;
  int64_t nu, theta, Br, Bi, end;
  HeadLayout head;
  Layout(std::vector<int64_t> dims_, int64_t n_, int64_t A_, int64_t Hw, int64_t N_)
      : dims(dims_), n(n_), A(A_), N(N_) {
    int64_t off = 0;
    for (int64_t i = 0; i < blocks(); ++i) {
      W.push_back(off);
      off += dims[i + 1] * dims[i];
      b.push_back(off);
      off += dims[i + 1];
    }
    nu = off; off += n;
    theta = off; off += n;
    Br = off; off += n * d();
    Bi = off; off += n * d();
    end = head.place(2 * n, Hw, A, off);
    TORCH_CHECK(end <= N, "flat parameter row of ", N, " holds fewer than the network's ", end, " parameters");
  }
};

template <typename T>
inline T activate(T v, int64_t kind) {
  if (kind == 0) return v > 0 ? v : (T)kLeakySlope * v;
  if (kind == 1) return std::tanh(v);
  return v > 0 ? v : (T)0;
}

template <typename T>
inline T activation_derivative(T normed, int64_t kind) {
  if (kind == 0) return normed > 0 ? (T)1 : (T)kLeakySlope;
  if (kind == 1) {
    T t = std::tanh(normed);
    return 1 - t * t;
  }
  return normed > 0 ? (T)1 : (T)0;
}

// The RTU's coefficients of one member, six arrays of n in a row of ``rtu_coefficients``: e^ν, θ, g = r cos θ,
// φ = r sin θ, γ = sqrt(1 - r²) + ε, dγ/dν. They change only when the parameters do, so they are computed once per
// update (rtu_coefficients) and read by every pass until the next, rather than again in each of QRC(λ)'s six passes
// a step (one agent's act + learn: 12% faster; a population, bound by memory traffic, no faster).
template <typename T>
void fill_coefficients(const T* nu_log, const T* theta_log, int64_t n, T* out) {
  T *e_nu = out, *theta = out + n, *g = out + 2 * n, *phi = out + 3 * n;
  T *input_scale = out + 4 * n, *dinput_scale_dnu = out + 5 * n;
  for (int64_t k = 0; k < n; ++k) {
    T e = std::exp(nu_log[k]);
    T r = std::exp(-e);
    T th = std::exp(theta_log[k]);
    T one_minus_r2 = 1 - r * r;
    e_nu[k] = e;
    theta[k] = th;
    g[k] = r * std::cos(th);
    phi[k] = r * std::sin(th);
    input_scale[k] = std::sqrt(one_minus_r2) + (T)kInputScaleEps;
    dinput_scale_dnu[k] = e * r * r / std::sqrt(one_minus_r2);
  }
}

// One member's coefficients, read from its row of ``rtu_coefficients`` (P, 6n).
template <typename T>
struct Coefficients {
  const T *e_nu, *theta, *g, *phi, *input_scale, *dinput_scale_dnu;
  Coefficients(const T* row, int64_t n)
      : e_nu(row),
        theta(row + n),
        g(row + 2 * n),
        phi(row + 3 * n),
        input_scale(row + 4 * n),
        dinput_scale_dnu(row + 5 * n) {}
};

// Feature blocks of member p: a = W x + b, n = LayerNorm(a), x = f(n), block after block; the last x into x_out.
template <typename T>
void features_forward(const std::vector<int64_t>& dims, const std::vector<int64_t>& W_off,
                      const std::vector<int64_t>& b_off, const T* row, const T* x_in, int64_t p, T* x_out_last,
                      std::vector<T*>& block_inputs, std::vector<T*>& block_normed, std::vector<T*>& block_inv_std,
                      int64_t activation, std::vector<T>& a_buf) {
  const int64_t blocks = (int64_t)dims.size() - 1;
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t in = dims[i], width = dims[i + 1];
    T* input_copy = block_inputs[i] + p * in;
    for (int64_t j = 0; j < in; ++j) input_copy[j] = x_in[j];
    a_buf.assign(width, 0);
    const T* W = row + W_off[i];
    const T* bias = row + b_off[i];
    T mean = 0;
    for (int64_t r = 0; r < width; ++r) {
      T acc = bias[r];
      const T* w = W + r * in;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < in; ++j) acc += w[j] * input_copy[j];
      a_buf[r] = acc;
      mean += acc;
    }
    mean /= width;
    T var = 0;
    for (int64_t r = 0; r < width; ++r) {
      T c = a_buf[r] - mean;
      var += c * c;
    }
    var /= width;
    T inv_std = 1 / std::sqrt(var + (T)kLayerNormEps);
    block_inv_std[i][p] = inv_std;
    T* normed = block_normed[i] + p * width;
    T* x_out = (i + 1 < blocks) ? block_inputs[i + 1] + p * width : x_out_last;
    for (int64_t r = 0; r < width; ++r) {
      normed[r] = (a_buf[r] - mean) * inv_std;
      x_out[r] = activate(normed[r], activation);
    }
    x_in = x_out;
  }
}

// Backward through member p's feature blocks from dL/dx of the last one (``dx``, overwritten): dW, db into g_row;
// with ``input_grad``, dx ends as dL/d(input of the first block) (for a head block: dL/dy).
template <typename T>
void features_backward(const std::vector<int64_t>& dims, const std::vector<int64_t>& W_off,
                       const std::vector<int64_t>& b_off, const T* row, T* g_row, int64_t p, std::vector<T>& dx,
                       const std::vector<const T*>& block_inputs, const std::vector<const T*>& block_normed,
                       const std::vector<const T*>& block_inv_std, int64_t activation, std::vector<T>& dn,
                       std::vector<T>& da, bool input_grad = false) {
  for (int64_t i = (int64_t)dims.size() - 2; i >= 0; --i) {
    const int64_t in = dims[i], width = dims[i + 1];
    const T* normed = block_normed[i] + p * width;
    const T inv_std = block_inv_std[i][p];
    dn.assign(width, 0);
    T mean_dn = 0, mean_dn_n = 0;
    for (int64_t r = 0; r < width; ++r) {
      dn[r] = dx[r] * activation_derivative(normed[r], activation);
      mean_dn += dn[r];
      mean_dn_n += dn[r] * normed[r];
    }
    mean_dn /= width;
    mean_dn_n /= width;
    da.assign(width, 0);
    const T* input = block_inputs[i] + p * in;
    T* gW = g_row + W_off[i];
    T* gb = g_row + b_off[i];
    for (int64_t r = 0; r < width; ++r) {
      da[r] = (dn[r] - mean_dn - normed[r] * mean_dn_n) * inv_std;
      gb[r] = da[r];
      for (int64_t j = 0; j < in; ++j) gW[r * in + j] = da[r] * input[j];
    }
    if (i == 0 && !input_grad) break;
    const T* W = row + W_off[i];
    dx.assign(in, 0);
    for (int64_t r = 0; r < width; ++r)
      for (int64_t j = 0; j < in; ++j) dx[j] += W[r * in + j] * da[r];
  }
}

// What the head's hidden block keeps for the backward pass: its input y (P, Y), normed (P, Hw), 1/σ (P), z (P, Hw).
template <typename T>
struct HeadTape {
  std::vector<T*> input, normed, inv_std;
  T* z = nullptr;
};

// Member p's head from the cell output y: out (A values) = W_o z + b_o, z from the hidden block if there is one.
template <typename T>
void head_forward(const HeadLayout& H, const T* row, const T* y, int64_t p, T* out, HeadTape<T>& tape,
                  int64_t activation, std::vector<T>& a_buf) {
  const T* read = y;
  if (H.Hw) {
    T* z = tape.z + p * H.Hw;
    features_forward(H.block_dims, H.block_W, H.block_b, row, y, p, z, tape.input, tape.normed, tape.inv_std,
                     activation, a_buf);
    read = z;
  }
  const int64_t R = H.read();
  const T* Wo = row + H.Wo;
  for (int64_t a = 0; a < H.A; ++a) {
    T acc = row[H.bo + a];
    const T* w = Wo + a * R;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = 0; j < R; ++j) acc += w[j] * read[j];
    out[a] = acc;
  }
}

// Member p's head backward from dL/dout (``go``): dW_o, db_o (and the hidden block's dW_h, db_h) into g_row, and
// dL/dy into ``dy`` (Y values).
template <typename T>
void head_backward(const HeadLayout& H, const T* row, T* g_row, const T* y, int64_t p, const T* go,
                   const std::vector<const T*>& input, const std::vector<const T*>& normed,
                   const std::vector<const T*>& inv_std, const T* z_tape, int64_t activation, std::vector<T>& dy,
                   std::vector<T>& dn, std::vector<T>& da) {
  const int64_t R = H.read();
  const T* read = H.Hw ? z_tape + p * H.Hw : y;
  for (int64_t a = 0; a < H.A; ++a) {
    for (int64_t j = 0; j < R; ++j) g_row[H.Wo + a * R + j] = go[a] * read[j];
    g_row[H.bo + a] = go[a];
  }
  dy.assign(R, 0);
  for (int64_t a = 0; a < H.A; ++a) {
    const T* w = row + H.Wo + a * R;
    for (int64_t j = 0; j < R; ++j) dy[j] += w[j] * go[a];
  }
  if (H.Hw)
    features_backward(H.block_dims, H.block_W, H.block_b, row, g_row, p, dy, input, normed, inv_std, activation, dn,
                      da, true);
}

// The Taylor correction C of one unit u of the linear RTU advanced in place (docs/method.md §3), before S itself
// is: with Δ the change of the member's RTU parameters since its previous advance (``rtu``: the row's ν_log column
// onwards, ``previous``: their copy), the old S and C, the carry h = h_{t-1} and u = B x_t,
//     dλ = λ (-e^ν Δν + iθ Δθ_log),   dγ = γ' Δν,   d(dλ/dν) = -e^ν (Δν λ + dλ),   d(dλ/dθ_log) = iθ (Δθ_log λ + dλ),
//     C^ν ← λ C^ν + dλ S^ν + d(dλ/dν) h + γ'' Δν u + γ' ΔB x,     γ'' = γ' (1 - 2e^ν - e^ν r² / (1 - r²)),
//     C^θ ← λ C^θ + dλ S^θ + d(dλ/dθ_log) h,
//     C^B_real[j] ← λ C^B_real[j] + dλ S^B_real[j] + dγ x_j,      C^B_imag = i C^B_real
// (the derivative of the step S ← λ S + J along (Δθ, C), at θ_t and S_{t-1}).
template <typename T>
void taylor_correct(const Coefficients<T>& k, int64_t u, int64_t n, int64_t d, const T* rtu, const T* previous,
                    const T* x, T h1, T h2, T u1, T u2, const T* sn, const T* st, const T* sbr, T* cn, T* ct, T* cbr,
                    T* cbi) {
  const T g = k.g[u], phi = k.phi[u], e = k.e_nu[u], th = k.theta[u], gp = k.dinput_scale_dnu[u];
  const T d_nu = rtu[u] - previous[u], d_theta = rtu[n + u] - previous[n + u];
  const T* Br = rtu + 2 * n + u * d;
  const T* Bi = rtu + 2 * n + n * d + u * d;
  const T* pBr = previous + 2 * n + u * d;
  const T* pBi = previous + 2 * n + n * d + u * d;
  T du1 = 0, du2 = 0;  // ΔB x
#pragma omp simd reduction(+ : du1, du2)
  for (int64_t j = 0; j < d; ++j) {
    du1 += (Br[j] - pBr[j]) * x[j];
    du2 += (Bi[j] - pBi[j]) * x[j];
  }
  const T w1 = -e * d_nu, w2 = th * d_theta;                            // dλ = λ (w1 + i w2)
  const T dl1 = g * w1 - phi * w2, dl2 = g * w2 + phi * w1;
  const T dn1 = -e * (d_nu * g + dl1), dn2 = -e * (d_nu * phi + dl2);  // d(dλ/dν)
  const T m1 = d_theta * g + dl1, m2 = d_theta * phi + dl2;
  const T dt1 = -th * m2, dt2 = th * m1;                                // d(dλ/dθ_log)
  const T r2 = std::exp(-2 * e);
  const T dgp = gp * (1 - 2 * e - e * r2 / (1 - r2)) * d_nu, d_input_scale = gp * d_nu;
  {
    const T a = sn[2 * u], b = sn[2 * u + 1], ca = cn[2 * u], cb = cn[2 * u + 1];
    cn[2 * u] = g * ca - phi * cb + dl1 * a - dl2 * b + dn1 * h1 - dn2 * h2 + dgp * u1 + gp * du1;
    cn[2 * u + 1] = g * cb + phi * ca + dl1 * b + dl2 * a + dn1 * h2 + dn2 * h1 + dgp * u2 + gp * du2;
  }
  {
    const T a = st[2 * u], b = st[2 * u + 1], ca = ct[2 * u], cb = ct[2 * u + 1];
    ct[2 * u] = g * ca - phi * cb + dl1 * a - dl2 * b + dt1 * h1 - dt2 * h2;
    ct[2 * u + 1] = g * cb + phi * ca + dl1 * b + dl2 * a + dt1 * h2 + dt2 * h1;
  }
  const T* r1 = sbr + 2 * u * d;
  T* q1 = cbr + 2 * u * d;
  T* q2 = cbi + 2 * u * d;
  for (int64_t j = 0; j < d; ++j) {
    const T a = r1[2 * j], b = r1[2 * j + 1], ca = q1[2 * j], cb = q1[2 * j + 1];
    const T na = g * ca - phi * cb + dl1 * a - dl2 * b + d_input_scale * x[j];
    const T nb = g * cb + phi * ca + dl1 * b + dl2 * a;
    q1[2 * j] = na;
    q1[2 * j + 1] = nb;
    q2[2 * j] = -nb;
    q2[2 * j + 1] = na;
  }
}

// Forward pass of every member; the tape keeps what the backward pass needs.
template <typename T>
void forward_impl(const Layout& L, int64_t P, const T* params, const T* coeffs, const T* obs, const T* hidden, T* s_nu, T* s_theta,
                  T* s_br, T* s_bi, T* out, T* new_hidden, T* y_tape, T* x_tape, std::vector<T*>& block_inputs,
                  std::vector<T*>& block_normed, std::vector<T*>& block_inv_std, HeadTape<T>& head_tape,
                  int64_t activation, bool nonlinear, bool advance, bool truncate, const Taylor<T>& taylor) {
  const int64_t n = L.n, d = L.d(), A = L.A;
  const int64_t rtu_size = 2 * n + 2 * n * d;  // ν_log, θ_log, B_real, B_imag: contiguous in the row
  const bool correct = advance && taylor.previous != nullptr;
  std::vector<T> a_buf;
  for (int64_t p = 0; p < P; ++p) {
    const T* row = params + p * L.N;
    features_forward(L.dims, L.W, L.b, row, obs + p * L.dims[0], p, x_tape + p * d, block_inputs, block_normed,
                     block_inv_std, activation, a_buf);
    const T* x = x_tape + p * d;
    // the RTU: h_t = f(λ h_{t-1} + γ u), u = (B_real x, B_imag x)
    const Coefficients<T> k(coeffs + p * 6 * n, n);
    const T* Br = row + L.Br;
    const T* Bi = row + L.Bi;
    const T* h = hidden + p * 2 * n;
    T* h_new = new_hidden + p * 2 * n;
    T* sn = s_nu + p * 2 * n;
    T* st = s_theta + p * 2 * n;
    T* sbr = s_br + p * 2 * n * d;
    T* sbi = s_bi + p * 2 * n * d;
    T* previous = correct ? taylor.previous + p * rtu_size : nullptr;
    for (int64_t u = 0; u < n; ++u) {
      const T* br = Br + u * d;
      const T* bi = Bi + u * d;
      T u1 = 0, u2 = 0;
#pragma omp simd reduction(+ : u1, u2)
      for (int64_t j = 0; j < d; ++j) {
        u1 += br[j] * x[j];
        u2 += bi[j] * x[j];
      }
      const T g = k.g[u], phi = k.phi[u], input_scale = k.input_scale[u];
      const T h1 = h[2 * u], h2 = h[2 * u + 1];
      const T lh1 = g * h1 - phi * h2, lh2 = g * h2 + phi * h1;
      T c1 = lh1 + input_scale * u1, c2 = lh2 + input_scale * u2;
      if (nonlinear) {
        c1 = std::tanh(c1);
        c2 = std::tanh(c2);
      }
      h_new[2 * u] = c1;
      h_new[2 * u + 1] = c2;
      if (!advance) continue;
      if (correct) {  // C from the old S, before S advances below
        taylor_correct(k, u, n, d, row + L.nu, previous, x, h1, h2, u1, u2, sn, st, sbr, taylor.nu + p * 2 * n,
                       taylor.theta + p * 2 * n, taylor.br + p * 2 * n * d, taylor.bi + p * 2 * n * d);
      }
      // S^p_t = D (λ S^p_{t-1} + J^p_t); TBPTT(1) (truncate): S_{t-1} = 0, so S_t = D J_t
      const T D1 = nonlinear ? 1 - c1 * c1 : (T)1, D2 = nonlinear ? 1 - c2 * c2 : (T)1;
      {
        const T a = truncate ? 0 : sn[2 * u], b = truncate ? 0 : sn[2 * u + 1];
        sn[2 * u] = D1 * (g * a - phi * b - k.e_nu[u] * lh1 + k.dinput_scale_dnu[u] * u1);
        sn[2 * u + 1] = D2 * (g * b + phi * a - k.e_nu[u] * lh2 + k.dinput_scale_dnu[u] * u2);
      }
      {
        const T a = truncate ? 0 : st[2 * u], b = truncate ? 0 : st[2 * u + 1];
        st[2 * u] = D1 * (g * a - phi * b - k.theta[u] * lh2);
        st[2 * u + 1] = D2 * (g * b + phi * a + k.theta[u] * lh1);
      }
      // TBPTT(1): S^B_t = D_t J_t is not stored; the backward pass forms it from x (one_step_b)
      if (truncate) continue;
      T* r1 = sbr + 2 * u * d;
      T* r2 = sbi + 2 * u * d;
      if (!nonlinear) {  // S^B_imag = i S^B_real (top of file): written from S^B_real, never read
        for (int64_t j = 0; j < d; ++j) {
          const T gx = input_scale * x[j];
          const T a = r1[2 * j], b = r1[2 * j + 1];
          const T na = g * a - phi * b + gx, nb = g * b + phi * a;
          r1[2 * j] = na;
          r1[2 * j + 1] = nb;
          r2[2 * j] = -nb;
          r2[2 * j + 1] = na;
        }
        continue;
      }
      for (int64_t j = 0; j < d; ++j) {
        const T gx = input_scale * x[j];
        const T a = r1[2 * j], b = r1[2 * j + 1];
        r1[2 * j] = D1 * (g * a - phi * b + gx);
        r1[2 * j + 1] = D2 * (g * b + phi * a);
        const T e = r2[2 * j], f = r2[2 * j + 1];
        r2[2 * j] = D1 * (g * e - phi * f);
        r2[2 * j + 1] = D2 * (g * f + phi * e + gx);
      }
    }
    if (correct) std::copy(row + L.nu, row + L.nu + rtu_size, previous);  // θ_{t-1} of the next advance
    // head: y = tanh([Re h, Im h]), out = W_o y + b_o (or through the head's hidden block)
    T* y = y_tape + p * 2 * n;
    for (int64_t u = 0; u < n; ++u) {
      y[u] = std::tanh(h_new[2 * u]);
      y[n + u] = std::tanh(h_new[2 * u + 1]);
    }
    head_forward(L.head, row, y, p, out + p * A, head_tape, activation, a_buf);
  }
}

// QRC(λ)'s update of one parameter θ_i from its gradient g_i (and g_next_i for Q), without clipping (qrc_row):
//   z_i ← decay z_i + g_i;  θ_i ← θ_i + α (δ z_i - h g_i - β θ_i [- b (γc g_next_i - g_i)]).
template <typename T>
struct QrcStep {
  T decay, lr, beta, b, gc, delta, hv;
  inline T direction(T& z, T g, T th, const T* gn) const { return gn ? with_next(z, g, th, *gn) : alone(z, g, th); }
  inline T alone(T& z, T g, T th) const {  // h's update (and Q's part without g_next)
    z = decay * z + g;
    return delta * z - hv * g - beta * th;
  }
  inline T with_next(T& z, T g, T th, T gn) const {
    T v = alone(z, g, th);
    v += -b * (gc * gn - g);
    return v;
  }
};

// Q's next-step gradient of the linear RTU's B block, left by its prior pass (∇Q(o′, a*)) for the current pass to
// form element by element (QRC(λ) without clipping), instead of writing that block of g_next and reading it back:
// per unit (wa, wb, e1, e2), where g_next^B[u, j] = (wa a + wb b + e1 γ x′_j, wa (-b) + wb a + e2 γ x′_j) over S's
// (a, b) (TBPTT(1): the last terms alone), and x′ of the member. Held as double, which holds a float exactly.
// The GRU's (cell_backward_impl) holds its gate gradients (dgi, dgh) in ``w`` and x′, h′ (the detached state the next
// step starts from): g_next of W_ih[k, j] = dgi[k] x′_j, of W_hh[k, j] = dgh[k] h′_j.
struct NextStepB {
  std::vector<double> w;
  const void* x = nullptr;
  const void* h = nullptr;
  bool truncate = false;
};

// A QRC(λ) update (no clipping) applied to the largest block of a row (the RTU's B, the GRU's weights) inside a
// backward pass, element by element as each gradient is formed, instead of writing the block's gradient and
// reading it back in a pass of its own: the parameter rows (written), the traces, what Q's prior pass left of
// g_next for the block (NextStepB; null for h) and the update coefficients (P, 5) of qrc_targets.
template <typename T>
struct InlineQrc {
  T* params = nullptr;
  T* trace = nullptr;
  const NextStepB* next_b = nullptr;  // Q: its next-step gradient of the block, from what its prior pass left
  const T* coeffs = nullptr;
  T decay = 0, lr = 0, beta = 0;
  QrcStep<T> step(int64_t p) const {
    const T* c = coeffs + p * 5;
    return {decay, lr, beta, c[0], c[1], c[2], c[3]};
  }
};

// TBPTT(1)'s one-step sensitivities of unit u's B rows, S^B_real[u, j] = (D¹ γ x_j, 0) and S^B_imag[u, j] =
// (0, D² γ x_j) with D = f'(a_t) from the new hidden state ``hn`` (1 for the linear RTU): the forward pass's own
// float operations, so the values are the ones it used to store.
template <typename T>
inline void one_step_b(const Coefficients<T>& k, int64_t u, int64_t d, const T* x, bool nonlinear, const T* hn,
                       T* r1, T* r2) {
  const T c1 = hn[2 * u], c2 = hn[2 * u + 1];
  const T D1 = nonlinear ? 1 - c1 * c1 : (T)1, D2 = nonlinear ? 1 - c2 * c2 : (T)1;
  const T input_scale = k.input_scale[u];
  for (int64_t j = 0; j < d; ++j) {
    const T gx = input_scale * x[j];
    r1[2 * j] = D1 * gx;
    r1[2 * j + 1] = 0;
    r2[2 * j] = 0;
    r2[2 * j + 1] = D2 * gx;
  }
}

// d(grad_out · out_t)/dθ of every parameter into row p of grad (same layout as params), for members p0 ≤ p < p1.
// With ``next_step`` the sensitivities used are those one step further, S' = D'(λ S + J(h_{t}, x')), computed on the fly from the stored
// S and the tape of a forward pass run with advance = false (QRC's ∇Q(o', a*)). With ``kTaylor`` (the linear RTU)
// every S read is S + C: the corrected sensitivities (one step further, λ(S + C) + J: the correction carries on
// with Δθ = 0, as nothing was updated since the advance).
template <typename T, bool kTaylor>
void backward_impl(const Layout& L, int64_t p0, int64_t p1, const T* params, const T* coeffs, const T* s_nu, const T* s_theta,
                   const T* s_br, const T* s_bi, const T* grad_out, T* grad, const T* y_tape, const T* x_tape, const T* hidden_prev,
                   const T* hidden_new, const std::vector<const T*>& block_inputs,
                   const std::vector<const T*>& block_normed, const std::vector<const T*>& block_inv_std,
                   const std::vector<const T*>& head_input, const std::vector<const T*>& head_normed,
                   const std::vector<const T*>& head_inv_std, const T* head_z, int64_t activation, bool nonlinear,
                   bool next_step, bool truncate, const Taylor<const T>& taylor, const InlineQrc<T>* inline_qrc,
                   NextStepB* defer_b) {
  const int64_t n = L.n, d = L.d(), A = L.A;
  std::vector<T> dc(2 * n), dy, dx, dn, da, jbr(truncate ? 2 * d : 0), jbi(truncate ? 2 * d : 0);
  // the credited sensitivity: S, or S + C with the correction
  auto at = [](const T* s, const T* c, int64_t i) -> T {
    if constexpr (kTaylor) return s[i] + c[i];
    else return s[i];
  };
  for (int64_t p = p0; p < p1; ++p) {
    const T* row = params + p * L.N;
    T* g_row = grad + p * L.N;
    const T* go = grad_out + p * A;
    const T* y = y_tape + p * 2 * n;
    // head, then through y = tanh(c)
    head_backward(L.head, row, g_row, y, p, go, head_input, head_normed, head_inv_std, head_z, activation, dy, dn, da);
    for (int64_t j = 0; j < 2 * n; ++j) dc[j] = dy[j] * (1 - y[j] * y[j]);
    // the RTU: dL/dp = dc¹ Re S^p + dc² Im S^p
    const Coefficients<T> k(coeffs + p * 6 * n, n);
    const T* x = x_tape + p * d;
    if (defer_b) defer_b->w.resize(4 * n), defer_b->x = x, defer_b->truncate = truncate;
    const T* h = hidden_prev + p * 2 * n;
    const T* hn = hidden_new + p * 2 * n;
    const T* sn = s_nu + p * 2 * n;
    const T* st = s_theta + p * 2 * n;
    const T* sbr = s_br + p * 2 * n * d;
    const T* sbi = s_bi + p * 2 * n * d;
    const T* cn = kTaylor ? taylor.nu + p * 2 * n : nullptr;
    const T* ct = kTaylor ? taylor.theta + p * 2 * n : nullptr;
    const T* Br = row + L.Br;
    const T* Bi = row + L.Bi;
    T* g_nu = g_row + L.nu;
    T* g_theta = g_row + L.theta;
    T* g_br = g_row + L.Br;
    T* g_bi = g_row + L.Bi;
    dx.assign(d, 0);
    for (int64_t u = 0; u < n; ++u) {
      const T dc1 = dc[u], dc2 = dc[n + u];
      const T* r1 = sbr + 2 * u * d;
      const T* r2 = sbi + 2 * u * d;
      if (truncate && !next_step) {  // TBPTT(1): this step's S^B = D J, formed here as the forward pass would have
        one_step_b(k, u, d, x, nonlinear, hn, jbr.data(), jbi.data());
        r1 = jbr.data();
        r2 = jbi.data();
      }
      const T* q1 = kTaylor ? taylor.br + p * 2 * n * d + 2 * u * d : nullptr;
      if (!next_step) {
        g_nu[u] = dc1 * at(sn, cn, 2 * u) + dc2 * at(sn, cn, 2 * u + 1);
        g_theta[u] = dc1 * at(st, ct, 2 * u) + dc2 * at(st, ct, 2 * u + 1);
        if (inline_qrc) {  // the linear RTU's B block updated as its gradient is formed (InlineQrc), dx from B before
          const QrcStep<T> q = inline_qrc->step(p);
          T* th_r = inline_qrc->params + p * L.N + L.Br + u * d;
          T* th_i = inline_qrc->params + p * L.N + L.Bi + u * d;
          T* z_r = inline_qrc->trace + p * L.N + L.Br + u * d;
          T* z_i = inline_qrc->trace + p * L.N + L.Bi + u * d;
          const T e1 = dc1 * k.input_scale[u], e2 = dc2 * k.input_scale[u];
          T* dxp = dx.data();
          if (const NextStepB* nb = inline_qrc->next_b) {  // g_next formed here (NextStepB)
            const double* w = nb->w.data() + 4 * u;
            const T wa = (T)w[0], wb = (T)w[1], n1 = (T)w[2], n2 = (T)w[3], input_scale = k.input_scale[u];
            const T* xn = static_cast<const T*>(nb->x);
            if (nb->truncate) {
#pragma omp simd
              for (int64_t j = 0; j < d; ++j) {
                dxp[j] += th_r[j] * e1 + th_i[j] * e2;
                const T a = at(r1, q1, 2 * j), b = at(r1, q1, 2 * j + 1);
                const T gr = dc1 * a + dc2 * b, gi = dc1 * (-b) + dc2 * a;
                th_r[j] += q.lr * q.with_next(z_r[j], gr, th_r[j], n1 * input_scale * xn[j]);
                th_i[j] += q.lr * q.with_next(z_i[j], gi, th_i[j], n2 * input_scale * xn[j]);
              }
            } else {
#pragma omp simd
              for (int64_t j = 0; j < d; ++j) {
                dxp[j] += th_r[j] * e1 + th_i[j] * e2;
                const T a = at(r1, q1, 2 * j), b = at(r1, q1, 2 * j + 1);
                const T gr = dc1 * a + dc2 * b, gi = dc1 * (-b) + dc2 * a;
                th_r[j] += q.lr * q.with_next(z_r[j], gr, th_r[j], wa * a + wb * b + n1 * input_scale * xn[j]);
                th_i[j] += q.lr * q.with_next(z_i[j], gi, th_i[j], wa * (-b) + wb * a + n2 * input_scale * xn[j]);
              }
            }
          } else {  // h: no g_next
#pragma omp simd
            for (int64_t j = 0; j < d; ++j) {
              dxp[j] += th_r[j] * e1 + th_i[j] * e2;
              const T a = at(r1, q1, 2 * j), b = at(r1, q1, 2 * j + 1);
              const T gr = dc1 * a + dc2 * b, gi = dc1 * (-b) + dc2 * a;
              th_r[j] += q.lr * q.alone(z_r[j], gr, th_r[j]);
              th_i[j] += q.lr * q.alone(z_i[j], gi, th_i[j]);
            }
          }
          continue;
        }
        if (!nonlinear) {  // S^B_imag = i S^B_real: (e, f) = (-b, a)
          for (int64_t j = 0; j < d; ++j) {
            const T a = at(r1, q1, 2 * j), b = at(r1, q1, 2 * j + 1);
            g_br[u * d + j] = dc1 * a + dc2 * b;
            g_bi[u * d + j] = dc1 * (-b) + dc2 * a;
          }
          continue;
        }
        for (int64_t j = 0; j < d; ++j) {
          g_br[u * d + j] = dc1 * r1[2 * j] + dc2 * r1[2 * j + 1];
          g_bi[u * d + j] = dc1 * r2[2 * j] + dc2 * r2[2 * j + 1];
        }
        continue;
      }
      const T g = k.g[u], phi = k.phi[u], input_scale = k.input_scale[u];
      const T c1 = hn[2 * u], c2 = hn[2 * u + 1];
      // dc · D (λ S + J) = (dc D λ-rotated) · S + dc D · J
      const T e1 = nonlinear ? dc1 * (1 - c1 * c1) : dc1, e2 = nonlinear ? dc2 * (1 - c2 * c2) : dc2;
      // (e1, e2) · (g a - φ b, g b + φ a) = a (e1 g + e2 φ) + b (e2 g - e1 φ)
      const T wa = e1 * g + e2 * phi, wb = e2 * g - e1 * phi;
      const T h1 = h[2 * u], h2 = h[2 * u + 1];
      const T lh1 = g * h1 - phi * h2, lh2 = g * h2 + phi * h1;
      T u1 = 0, u2 = 0;
#pragma omp simd reduction(+ : u1, u2)
      for (int64_t j = 0; j < d; ++j) {
        u1 += Br[u * d + j] * x[j];
        u2 += Bi[u * d + j] * x[j];
      }
      g_nu[u] = e1 * (-k.e_nu[u] * lh1 + k.dinput_scale_dnu[u] * u1) +
                e2 * (-k.e_nu[u] * lh2 + k.dinput_scale_dnu[u] * u2);
      g_theta[u] = e1 * (-k.theta[u] * lh2) + e2 * (k.theta[u] * lh1);
      if (defer_b) {  // the B block left to the current pass (NextStepB)
        double* w = defer_b->w.data() + 4 * u;
        w[0] = wa, w[1] = wb, w[2] = e1, w[3] = e2;
        if (!truncate) {
          g_nu[u] += wa * at(sn, cn, 2 * u) + wb * at(sn, cn, 2 * u + 1);
          g_theta[u] += wa * at(st, ct, 2 * u) + wb * at(st, ct, 2 * u + 1);
        }
        continue;
      }
      if (truncate) {  // TBPTT(1): the step from a detached h_t, no earlier sensitivity
        for (int64_t j = 0; j < d; ++j) {
          g_br[u * d + j] = e1 * input_scale * x[j];
          g_bi[u * d + j] = e2 * input_scale * x[j];
        }
        continue;
      }
      g_nu[u] += wa * at(sn, cn, 2 * u) + wb * at(sn, cn, 2 * u + 1);
      g_theta[u] += wa * at(st, ct, 2 * u) + wb * at(st, ct, 2 * u + 1);
      if (!nonlinear) {  // S^B_imag = i S^B_real: (e, f) = (-b, a)
        for (int64_t j = 0; j < d; ++j) {
          const T a = at(r1, q1, 2 * j), b = at(r1, q1, 2 * j + 1);
          g_br[u * d + j] = wa * a + wb * b + e1 * input_scale * x[j];
          g_bi[u * d + j] = wa * (-b) + wb * a + e2 * input_scale * x[j];
        }
        continue;
      }
      for (int64_t j = 0; j < d; ++j) {
        g_br[u * d + j] = wa * r1[2 * j] + wb * r1[2 * j + 1] + e1 * input_scale * x[j];
        g_bi[u * d + j] = wa * r2[2 * j] + wb * r2[2 * j + 1] + e2 * input_scale * x[j];
      }
    }
    // one-step input gradient dx = B_realᵀ(γ D¹ dc¹) + B_imagᵀ(γ D² dc²) (inline: summed above, from B before its
    // update), then the feature blocks backwards
    for (int64_t u = 0; u < n && !inline_qrc; ++u) {
      T e1 = dc[u], e2 = dc[n + u];
      if (nonlinear) {
        const T c1 = hn[2 * u], c2 = hn[2 * u + 1];
        e1 *= 1 - c1 * c1;
        e2 *= 1 - c2 * c2;
      }
      e1 *= k.input_scale[u];
      e2 *= k.input_scale[u];
      for (int64_t j = 0; j < d; ++j) dx[j] += Br[u * d + j] * e1 + Bi[u * d + j] * e2;
    }
    features_backward(L.dims, L.W, L.b, row, g_row, p, dx, block_inputs, block_normed, block_inv_std, activation, dn,
                      da);
  }
}

Layout layout_of(const std::vector<int64_t>& dims, int64_t n, int64_t A, int64_t Hw, const at::Tensor& params) {
  TORCH_CHECK(params.dim() == 2 && params.is_contiguous(), "params must be a contiguous (P, N) buffer");
  return Layout(dims, n, A, Hw, params.size(1));
}

// The head's tape tensors (input, normed, 1/σ, z) when it has a hidden block of width Hw; none otherwise.
std::vector<at::Tensor> head_tape_tensors(const HeadLayout& H, int64_t P, const at::TensorOptions& opts) {
  if (!H.Hw) return {};
  return {at::empty({P, H.Y}, opts), at::empty({P, H.Hw}, opts), at::empty({P}, opts), at::empty({P, H.Hw}, opts)};
}

template <typename T>
HeadTape<T> head_tape_of(std::vector<at::Tensor>& tensors) {
  HeadTape<T> tape;
  if (tensors.empty()) return tape;
  tape.input = {tensors[0].data_ptr<T>()};
  tape.normed = {tensors[1].data_ptr<T>()};
  tape.inv_std = {tensors[2].data_ptr<T>()};
  tape.z = tensors[3].data_ptr<T>();
  return tape;
}

// The head's part of a tape (after ``first`` entries) as backward_impl reads it.
template <typename T>
struct HeadTapeIn {
  std::vector<const T*> input, normed, inv_std;
  const T* z = nullptr;
  HeadTapeIn(const std::vector<at::Tensor>& tape, size_t first, bool present) {
    if (!present) return;
    input = {tape[first].data_ptr<T>()};
    normed = {tape[first + 1].data_ptr<T>()};
    inv_std = {tape[first + 2].data_ptr<T>()};
    z = tape[first + 3].data_ptr<T>();
  }
};

// The feature blocks' part of a tape: each block's input, normed pre-activation and 1/σ, for P members. The
// forward pass allocates it; ``pointers`` gives the raw pointers of a forward pass (writing) or, from a returned
// tape whose blocks start at entry ``first``, of a backward pass (reading).
struct FeatureTape {
  std::vector<at::Tensor> inputs, normed, inv_std;
  FeatureTape(const std::vector<int64_t>& dims, int64_t P, const at::TensorOptions& opts) {
    for (size_t i = 0; i + 1 < dims.size(); ++i) {
      inputs.push_back(at::empty({P, dims[i]}, opts));
      normed.push_back(at::empty({P, dims[i + 1]}, opts));
      inv_std.push_back(at::empty({P}, opts));
    }
  }
  FeatureTape(const std::vector<at::Tensor>& tape, size_t first, size_t blocks) {
    for (size_t i = 0; i < blocks; ++i) {
      inputs.push_back(tape[first + i]);
      normed.push_back(tape[first + blocks + i]);
      inv_std.push_back(tape[first + 2 * blocks + i]);
    }
  }
  template <typename P>
  void pointers(std::vector<P*>& in, std::vector<P*>& nd, std::vector<P*>& is) const {
    using T = std::remove_const_t<P>;
    for (size_t i = 0; i < inputs.size(); ++i) {
      in.push_back(inputs[i].data_ptr<T>());
      nd.push_back(normed[i].data_ptr<T>());
      is.push_back(inv_std[i].data_ptr<T>());
    }
  }
  // the tape a forward pass returns: [first..., block inputs..., block normed..., block 1/σ..., head...]
  std::vector<at::Tensor> returned(std::vector<at::Tensor> first, const std::vector<at::Tensor>& head) const {
    for (auto* group : {&inputs, &normed, &inv_std, &head}) first.insert(first.end(), group->begin(), group->end());
    return first;
  }
};

void check(const at::Tensor& t, const at::Tensor& like, const char* name) {
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " has the wrong dtype");
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
}

void check_coefficients(const at::Tensor& coeffs, const at::Tensor& params, int64_t n) {
  check(coeffs, params, "coeffs");
  TORCH_CHECK(coeffs.dim() == 2 && coeffs.size(0) == params.size(0) && coeffs.size(1) == 6 * n,
              "the RTU coefficients must be (P, 6n), from rtu_coefficients");
}

// The Taylor correction's tensors, if given: C^ν, C^θ, C^B_real, C^B_imag shaped like S (as real views), and (for a
// forward pass) the previous RTU parameters (P, 2n + 2nd); only for the linear RTU in RTRL mode.
void check_taylor(const std::vector<at::Tensor>& taylor, std::initializer_list<const at::Tensor*> sensitivities,
                  const at::Tensor& params, int64_t rtu_size, bool unsupported) {
  if (taylor.empty()) return;
  TORCH_CHECK(!unsupported, "the native Taylor correction is for the linear RTU in RTRL mode");
  TORCH_CHECK(taylor.size() == 4 || taylor.size() == 5, "taylor: C^nu, C^theta, C^B_real, C^B_imag [, previous]");
  size_t i = 0;
  for (const at::Tensor* s : sensitivities) {
    check(taylor[i], params, "a Taylor correction");
    TORCH_CHECK(taylor[i].sizes() == s->sizes(), "each Taylor correction must be shaped like its sensitivity");
    ++i;
  }
  if (taylor.size() == 5) {
    check(taylor[4], params, "the previous RTU parameters");
    TORCH_CHECK(taylor[4].size(0) == params.size(0) && taylor[4].numel() == params.size(0) * rtu_size,
                "the previous RTU parameters must be (P, 2n + 2nd)");
  }
}

// The Taylor correction's raw pointers (``P`` = T for a forward pass, const T for a backward pass); none without it.
template <typename P>
Taylor<P> taylor_of(const std::vector<at::Tensor>& taylor) {
  using T = std::remove_const_t<P>;
  if (taylor.empty()) return {};
  return {taylor[0].data_ptr<T>(), taylor[1].data_ptr<T>(), taylor[2].data_ptr<T>(), taylor[3].data_ptr<T>(),
          taylor.size() == 5 ? taylor[4].data_ptr<T>() : nullptr};
}

// ObGD for one member's row: e ← decay e + g; M = α κ max(|δ|, 1) ‖e‖₁; α' = α / M if M > 1 else α; θ ← θ + α' δ e.
template <typename T>
void obgd_row(T* th, T* e, const T* g, int64_t N, T decay, T delta, T lr, T kappa, bool reset) {
  T l1 = 0;
#pragma omp simd reduction(+ : l1)
  for (int64_t i = 0; i < N; ++i) {
    e[i] = decay * e[i] + g[i];
    l1 += std::abs(e[i]);
  }
  const T bound = lr * kappa * std::max(std::abs(delta), (T)1) * l1;
  const T alpha = bound > 1 ? lr / bound : lr;
  const T scale = alpha * delta;
#pragma omp simd
  for (int64_t i = 0; i < N; ++i) th[i] += scale * e[i];
  if (reset)
    for (int64_t i = 0; i < N; ++i) e[i] = 0;
}

// QRC(λ) for one member's row (see RowUpdate). Without clipping, one pass: θ += α u as u is formed, except over
// [skip0, skip1) (a block a backward pass updated inline: InlineQrc). With clipping, u goes into ``g`` (the gradient
// row, not needed after) and θ += α min(1, clip / ‖u‖₂) u in a second pass.
template <typename T>
void qrc_row(T* th, T* z, T* g, const T* gn, int64_t N, const T* c, T decay, T lr, T beta, T clip, int64_t skip0 = 0,
             int64_t skip1 = 0) {
  const QrcStep<T> q{decay, lr, beta, c[0], c[1], c[2], c[3]};
  auto direction = [&](int64_t i) { return q.direction(z[i], g[i], th[i], gn ? gn + i : nullptr); };
  if (clip > 0) {
    TORCH_CHECK(skip0 == skip1, "a clipped QRC update needs the whole gradient row");
    T sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < N; ++i) {
      const T v = direction(i);
      g[i] = v;
      sq += v * v;
    }
    const T scale = lr * std::min((T)1, clip / (std::sqrt(sq) + (T)1e-12));
#pragma omp simd
    for (int64_t i = 0; i < N; ++i) th[i] += scale * g[i];
  } else {
#pragma omp simd
    for (int64_t i = 0; i < skip0; ++i) th[i] += lr * direction(i);
#pragma omp simd
    for (int64_t i = skip1 > skip0 ? skip1 : 0; i < N; ++i) th[i] += lr * direction(i);
  }
  if (c[4] != 0)
    for (int64_t i = 0; i < N; ++i) z[i] = 0;
}

// A backward pass bound to its arguments (it holds the tensors it reads and writes), to run later for members
// p0 ≤ p < p1 of its P. QRC(λ) hands its ∇Q(o′, a*) pass to Q's update as ``prior``: the backward pass of ∇Q(o, a)
// then runs it member by member, each member's next-step gradient row just before its current one and its update,
// while that member's sensitivities and parameter row are in cache (rather than as a whole pass over every member's
// sensitivities beforehand: they are read from memory once per step instead of twice).
struct RowUpdate;
struct BackwardPass {
  int64_t P = 0;
  std::function<void(int64_t, int64_t)> run;
  // where it can (the linear RTU's current-step pass), member p's pass with a QRC(λ) update of its B block inline,
  // the row's columns [skip0, skip1); the rest of the row is left to the update
  std::function<void(int64_t, const RowUpdate&, const NextStepB*)> run_inline;
  // where it can (the linear RTU's next-step pass, as a prior): member p's pass leaving its B block in ``NextStepB``
  std::function<void(int64_t, NextStepB&)> run_deferring;
  int64_t skip0 = 0, skip1 = 0;
};

// The update of a member's parameter row, applied by a backward pass right after it computes that member's gradient
// row, while the row is still in cache (rather than in a second pass over all members' rows from memory):
//   ObGD (Stream AC(λ))  e ← decay e + g,  α' = α / max(1, α κ max(|δ|, 1) ‖e‖₁),  θ ← θ + α' δ e,  e ← 0 if reset
//   QRC(λ)               z ← decay z + g,  u = -b (γc g_next - g) + δ z - h g - β θ  (g_next absent for h),
//                        θ ← θ + α min(1, clip / ‖u‖₂) u (no clipping when clip = 0),  z ← 0 if cut
// (docs/method.md §4). ObGD reads δ (P,) and reset (P,); QRC reads ``coeffs`` (P, 5): b, γ(1 - terminal), δ, h(o, a),
// cut (0/1). With a ``prior`` pass (QRC's Q: the one that writes g_next), the member's row of it runs first.
struct RowUpdate {
  bool qrc = false;
  at::Tensor trace, td_error, reset, coeffs;
  c10::optional<at::Tensor> grad_next;
  std::shared_ptr<BackwardPass> prior;
  double decay = 0, lr = 0, kappa = 0, beta = 0, clip = 0;

  void check_against(const at::Tensor& params) const;

  // a QRC(λ) update without clipping, which a backward pass can apply inline (BackwardPass::run_inline)
  bool inline_ok() const { return qrc && clip == 0; }

  template <typename T>
  InlineQrc<T> inline_qrc(const at::Tensor& params, const NextStepB* next_b) const {
    InlineQrc<T> q;
    q.params = params.data_ptr<T>();
    q.trace = trace.data_ptr<T>();
    q.next_b = next_b;
    q.coeffs = coeffs.data_ptr<T>();
    q.decay = (T)decay, q.lr = (T)lr, q.beta = (T)beta;
    return q;
  }

  template <typename T>
  void apply(const at::Tensor& params, const at::Tensor& grad, int64_t p, int64_t skip0 = 0, int64_t skip1 = 0) const {
    const int64_t N = params.size(1);
    T* th = params.data_ptr<T>() + p * N;
    T* e = trace.data_ptr<T>() + p * N;
    T* g = grad.data_ptr<T>() + p * N;
    if (qrc) {
      const T* gn = grad_next.has_value() ? grad_next->data_ptr<T>() + p * N : nullptr;
      qrc_row<T>(th, e, g, gn, N, coeffs.data_ptr<T>() + p * 5, (T)decay, (T)lr, (T)beta, (T)clip, skip0, skip1);
    } else {
      obgd_row<T>(th, e, g, N, (T)decay, td_error.data_ptr<T>()[p], (T)lr, (T)kappa, reset.data_ptr<bool>()[p]);
    }
  }
};

// ``pass`` for every member: all at once, or with ``update`` member by member, each row updated right after its
// gradient (and the update's prior pass, if any, run for that member first).
void run_members(const BackwardPass& pass, const RowUpdate* update, const at::Tensor& params, const at::Tensor& grad) {
  if (!update) return pass.run(0, pass.P);
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "row_update", [&] {
    // inline where the pass can and, for Q, its prior pass can leave its part of the block to it
    const bool inline_update = pass.run_inline && update->inline_ok() && (!update->prior || update->prior->run_deferring);
    const bool defer = inline_update && update->prior;
    NextStepB next_b;
    for (int64_t p = 0; p < pass.P; ++p) {
      if (defer) update->prior->run_deferring(p, next_b);
      else if (update->prior) update->prior->run(p, p + 1);
      if (inline_update) {
        pass.run_inline(p, *update, defer ? &next_b : nullptr);
        update->template apply<scalar_t>(params, grad, p, pass.skip0, pass.skip1);
      } else {
        pass.run(p, p + 1);
        update->template apply<scalar_t>(params, grad, p);
      }
    }
  });
}

}  // namespace

void RowUpdate::check_against(const at::Tensor& params) const {
  check(trace, params, "trace");
  TORCH_CHECK(trace.sizes() == params.sizes(), "the trace must be shaped like params");
  const int64_t P = params.size(0);
  if (qrc) {
    check(coeffs, params, "coeffs");
    TORCH_CHECK(coeffs.size(0) == P && coeffs.size(1) == 5, "coeffs must be (P, 5)");
    if (grad_next.has_value()) {
      check(*grad_next, params, "grad_next");
      TORCH_CHECK(grad_next->sizes() == params.sizes(), "grad_next must be shaped like params");
    }
    TORCH_CHECK(!prior || (grad_next.has_value() && prior->P == P),
                "a prior pass needs grad_next (which it writes) and the same population");
  } else {
    check(td_error, params, "td_error");
    TORCH_CHECK(td_error.numel() == P && reset.numel() == P, "td_error and reset must have one value per member");
  }
}

RowUpdate obgd_update(at::Tensor trace, double decay, at::Tensor td_error, double lr, double kappa, at::Tensor reset) {
  RowUpdate u;
  u.trace = trace;
  u.td_error = td_error.contiguous();
  u.reset = reset.to(at::kBool).contiguous();
  u.decay = decay;
  u.lr = lr;
  u.kappa = kappa;
  return u;
}

RowUpdate qrc_update(at::Tensor trace, c10::optional<at::Tensor> grad_next, at::Tensor coeffs, double decay,
                     double lr, double beta, double clip, std::shared_ptr<BackwardPass> prior) {
  RowUpdate u;
  u.qrc = true;
  u.trace = trace;
  u.grad_next = grad_next;
  u.prior = prior;
  u.coeffs = coeffs.contiguous();
  u.decay = decay;
  u.lr = lr;
  u.beta = beta;
  u.clip = clip;
  return u;
}

// The first index of each row's largest value (a NaN counting as the largest), as torch.argmax and torch.max(dim).
template <typename T>
int64_t argmax_row(const T* row, int64_t A) {
  int64_t best = 0;
  for (int64_t a = 1; a < A; ++a)
    if (!std::isnan(row[best]) && (std::isnan(row[a]) || row[a] > row[best])) best = a;
  return best;
}

// QRC(λ)'s ε-greedy choice for each member (rtu_core/agents/qrc.py): a* = argmax_a Q(o, a); with draws u ~ U[0, 1)²,
// a = min(⌊u₁ A⌋, A - 1) where u₀ < ε, else a*. Returns [a (int64), Q(o, a), h(o, a), a ≠ a* (bool)].
std::vector<at::Tensor> qrc_choose(at::Tensor q, at::Tensor h, at::Tensor draws, double epsilon) {
  check(h, q, "h");
  draws = draws.contiguous();  // a column block of the member streams' pool
  check(draws, q, "draws");
  const int64_t P = q.size(0), A = q.size(1);
  TORCH_CHECK(h.sizes() == q.sizes() && draws.numel() == 2 * P, "qrc_choose: Q, h (P, A) and draws (P, 2) expected");
  at::Tensor action = at::empty({P}, q.options().dtype(at::kLong)), nongreedy = at::empty({P}, q.options().dtype(at::kBool));
  at::Tensor q_a = at::empty({P}, q.options()), h_a = at::empty({P}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "qrc_choose", [&] {
    const scalar_t *qp = q.data_ptr<scalar_t>(), *hp = h.data_ptr<scalar_t>(), *u = draws.data_ptr<scalar_t>();
    const scalar_t eps = (scalar_t)epsilon;
    for (int64_t p = 0; p < P; ++p) {
      const int64_t greedy = argmax_row(qp + p * A, A);
      const int64_t random = std::min((int64_t)(u[2 * p + 1] * (scalar_t)A), A - 1);
      const int64_t a = u[2 * p] < eps ? random : greedy;
      action.data_ptr<int64_t>()[p] = a;
      nongreedy.data_ptr<bool>()[p] = a != greedy;
      q_a.data_ptr<scalar_t>()[p] = qp[p * A + a];
      h_a.data_ptr<scalar_t>()[p] = hp[p * A + a];
    }
  });
  return {action, q_a, h_a, nongreedy};
}

// QRC(λ)'s per-member numbers for a transition (o, a, r, o′) (rtu_core/agents/qrc.py, docs/method.md §4), from
// Q(o′, ·) (memory not advanced) and the step's Q(o, a), h(o, a) (h taken as 0 without the correction):
//   δ = r + γ(1 - terminal) max_a′ Q(o′, a′) - Q(o, a),   b ← decay b + h  (in place, then 0 where cut),
//   cut = done or a not greedy.
// Each product and sum is rounded on its own, as the eager step's tensor operations are. Returns [δ, coeffs (P, 5) =
// (b, γ(1 - terminal), δ, h, cut) for qrc_update, dQ(o, a)/d out and dQ(o′, a*)/d out (one-hot rows, a* the argmax)].
std::vector<at::Tensor> qrc_targets(at::Tensor next_q, at::Tensor reward, at::Tensor terminated, at::Tensor done,
                                    at::Tensor q_a, at::Tensor h_a, at::Tensor action, at::Tensor nongreedy,
                                    at::Tensor bias_trace, double gamma, double decay, bool correction) {
  reward = reward.contiguous();
  for (auto* t : {&reward, &q_a, &h_a, &bias_trace}) check(*t, next_q, "a QRC input");
  const int64_t P = next_q.size(0), A = next_q.size(1);
  TORCH_CHECK(reward.numel() == P && q_a.numel() == P && h_a.numel() == P && bias_trace.numel() == P &&
                  action.numel() == P && terminated.numel() == P && done.numel() == P && nongreedy.numel() == P,
              "qrc_targets: one value per member expected");
  TORCH_CHECK(action.scalar_type() == at::kLong && action.is_contiguous(), "qrc_targets: int64 actions expected");
  const at::Tensor term = terminated.to(at::kBool).contiguous(), end = done.to(at::kBool).contiguous();
  const at::Tensor explored = nongreedy.to(at::kBool).contiguous();
  at::Tensor td = at::empty({P}, next_q.options()), coeffs = at::empty({P, 5}, next_q.options());
  at::Tensor onehot = at::zeros({P, A}, next_q.options()), onehot_next = at::zeros({P, A}, next_q.options());
  AT_DISPATCH_FLOATING_TYPES(next_q.scalar_type(), "qrc_targets", [&] {
    using T = scalar_t;
    const T g = (T)gamma, dec = (T)decay;
    T* b = bias_trace.data_ptr<T>();
    for (int64_t p = 0; p < P; ++p) {
      const T* row = next_q.data_ptr<T>() + p * A;
      const int64_t best = argmax_row(row, A);
      const T discount = term.data_ptr<bool>()[p] ? (T)0 : g;
      volatile T product = discount * row[best];  // volatile: no fused multiply-add, each step rounded
      volatile T target = reward.data_ptr<T>()[p] + product;
      const T delta = target - q_a.data_ptr<T>()[p];
      const T hv = correction ? h_a.data_ptr<T>()[p] : (T)0;
      volatile T decayed = dec * b[p];
      b[p] = decayed + hv;
      const bool cut = end.data_ptr<bool>()[p] || explored.data_ptr<bool>()[p];
      T* c = coeffs.data_ptr<T>() + p * 5;
      c[0] = b[p], c[1] = discount, c[2] = delta, c[3] = hv, c[4] = cut ? (T)1 : (T)0;
      if (cut) b[p] = 0;
      td.data_ptr<T>()[p] = delta;
      const int64_t taken = action.data_ptr<int64_t>()[p];
      TORCH_CHECK(taken >= 0 && taken < A, "qrc_targets: an action outside [0, A)");
      onehot.data_ptr<T>()[p * A + taken] = 1;
      onehot_next.data_ptr<T>()[p * A + best] = 1;
    }
  });
  return {td, coeffs, onehot, onehot_next};
}

// log softmax of one row, as torch.log_softmax rounds it: (x - max) - log Σ exp(x - max).
template <typename T>
void log_softmax_row(const T* x, int64_t A, T* out) {
  T top = x[0];
  for (int64_t a = 1; a < A; ++a) top = std::max(top, x[a]);
  T sum = 0;
  for (int64_t a = 0; a < A; ++a) sum += std::exp(x[a] - top);
  const T log_sum = std::log(sum);
  for (int64_t a = 0; a < A; ++a) out[a] = (x[a] - top) - log_sum;
}

// Stream AC(λ)'s categorical action for each member (rtu_core/agents/policy.py): a ~ softmax(logits) by the
// inverse CDF of u ~ U[0, 1): a = #{a′ : Σ_{b ≤ a′} π(b) < u}, at most A - 1.
at::Tensor categorical_sample(at::Tensor logits, at::Tensor uniform) {
  uniform = uniform.contiguous();
  check(logits, logits, "logits");
  check(uniform, logits, "uniform");
  const int64_t P = logits.size(0), A = logits.size(1);
  TORCH_CHECK(uniform.numel() == P, "categorical_sample: one draw per member expected");
  at::Tensor action = at::empty({P}, logits.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "categorical_sample", [&] {
    std::vector<scalar_t> lp(A);
    for (int64_t p = 0; p < P; ++p) {
      log_softmax_row(logits.data_ptr<scalar_t>() + p * A, A, lp.data());
      const scalar_t u = uniform.data_ptr<scalar_t>()[p];
      scalar_t cdf = 0;
      int64_t below = 0;
      for (int64_t a = 0; a < A; ++a) {
        cdf += std::exp(lp[a]);
        below += cdf < u;
      }
      action.data_ptr<int64_t>()[p] = std::min(below, A - 1);
    }
  });
  return action;
}

// Stream AC(λ)'s per-member numbers for a transition (rtu_core/agents/stream_ac.py, docs/method.md §4):
//   δ = r + γ V(o′) (1 - terminal) - V(o),  c = η sign(δ),  and d[log π(a) + c H(π)]/d out:
//   categorical  onehot(a) - π - c π (log π + H),  H = -Σ π log π;
//   Gaussian     (a - μ) / σ²  and, for log σ, (a - μ)² / σ² - 1 + c  (σ = exp(log σ) given, state-independent).
// Returns [δ (P,), the actor's output gradient (P, A), the log σ gradient (P, A) (Gaussian; else empty)].
std::vector<at::Tensor> stream_ac_targets(at::Tensor out, at::Tensor action, at::Tensor value, at::Tensor next_value,
                                          at::Tensor reward, at::Tensor terminated, c10::optional<at::Tensor> sigma,
                                          double gamma, double entropy_coeff) {
  reward = reward.contiguous(), value = value.contiguous(), next_value = next_value.contiguous();
  action = action.contiguous();
  for (auto* t : {&out, &value, &next_value, &reward}) check(*t, out, "a Stream AC input");
  const int64_t P = out.size(0), A = out.size(1);
  TORCH_CHECK(value.numel() == P && next_value.numel() == P && reward.numel() == P && terminated.numel() == P,
              "stream_ac_targets: one value per member expected");
  const bool gaussian = sigma.has_value();
  TORCH_CHECK(gaussian ? action.sizes() == out.sizes() && action.scalar_type() == out.scalar_type()
                       : action.scalar_type() == at::kLong && action.numel() == P,
              "stream_ac_targets: (P, A) Gaussian or (P,) int64 categorical actions expected");
  const at::Tensor term = terminated.to(at::kBool).contiguous();
  at::Tensor td = at::empty({P}, out.options()), grad = at::empty({P, A}, out.options());
  at::Tensor grad_log_std = gaussian ? at::empty({P, A}, out.options()) : at::empty({0}, out.options());
  at::Tensor std_dev = gaussian ? sigma->contiguous() : at::Tensor();
  if (gaussian) check(std_dev, out, "sigma");
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "stream_ac_targets", [&] {
    using T = scalar_t;
    std::vector<T> lp(A), pi(A);
    for (int64_t p = 0; p < P; ++p) {
      volatile T scaled = (T)gamma * next_value.data_ptr<T>()[p];  // volatile: each step rounded on its own
      volatile T bootstrap = scaled * (term.data_ptr<bool>()[p] ? (T)0 : (T)1);
      volatile T target = reward.data_ptr<T>()[p] + bootstrap;
      const T delta = target - value.data_ptr<T>()[p];
      td.data_ptr<T>()[p] = delta;
      const T c = (T)entropy_coeff * (T)((delta > 0) - (delta < 0));
      const T* x = out.data_ptr<T>() + p * A;
      T* g = grad.data_ptr<T>() + p * A;
      if (gaussian) {
        const T* a = action.data_ptr<T>() + p * A;
        T* gs = grad_log_std.data_ptr<T>() + p * A;
        for (int64_t i = 0; i < A; ++i) {
          const T s = std_dev.data_ptr<T>()[p * A + i];  // exp(log σ) by torch, as the eager step rounds it
          const T z = (a[i] - x[i]) / s;
          g[i] = z / s;
          volatile T square = z * z;
          volatile T less_one = square - 1;
          gs[i] = less_one + c;
        }
      } else {
        log_softmax_row(x, A, lp.data());
        T entropy = 0;
        for (int64_t i = 0; i < A; ++i) {
          pi[i] = std::exp(lp[i]);
          entropy += pi[i] * lp[i];
        }
        entropy = -entropy;
        const int64_t chosen = action.data_ptr<int64_t>()[p];
        TORCH_CHECK(chosen >= 0 && chosen < A, "stream_ac_targets: an action outside [0, A)");
        for (int64_t i = 0; i < A; ++i) {
          volatile T weighted = c * pi[i];
          volatile T term_i = weighted * (lp[i] + entropy);
          volatile T first = (i == chosen ? (T)1 : (T)0) - pi[i];
          g[i] = first - term_i;
        }
      }
    }
  });
  return {td, grad, grad_log_std};
}

// The RTU coefficients of every member (P, 6n; fill_coefficients), for the passes until its parameters next change.
at::Tensor rtu_coefficients(at::Tensor params, std::vector<int64_t> dims, int64_t n, int64_t A, int64_t head_width) {
  Layout L = layout_of(dims, n, A, head_width, params);
  const int64_t P = params.size(0);
  at::Tensor coeffs = at::empty({P, 6 * n}, params.options());
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "rtu_coefficients", [&] {
    for (int64_t p = 0; p < P; ++p) {
      const scalar_t* row = params.data_ptr<scalar_t>() + p * L.N;
      fill_coefficients<scalar_t>(row + L.nu, row + L.theta, n, coeffs.data_ptr<scalar_t>() + p * 6 * n);
    }
  });
  return coeffs;
}

// Returns [out, new hidden, y, x, block inputs..., block normed..., block 1/σ...]; S advanced in place if asked.
std::vector<at::Tensor> network_forward(at::Tensor params, std::vector<int64_t> dims, int64_t n, int64_t A,
                                        int64_t head_width, at::Tensor coeffs, at::Tensor obs, at::Tensor hidden, at::Tensor s_nu, at::Tensor s_theta,
                                        at::Tensor s_br, at::Tensor s_bi, int64_t activation, bool nonlinear,
                                        bool advance, bool truncate, std::vector<at::Tensor> taylor) {
  Layout L = layout_of(dims, n, A, head_width, params);
  const int64_t P = params.size(0);
  check_coefficients(coeffs, params, n);
  for (auto* t : {&obs, &hidden, &s_nu, &s_theta, &s_br, &s_bi}) check(*t, params, "a network input");
  TORCH_CHECK(obs.numel() == P * dims[0] && hidden.numel() == P * 2 * n && s_br.numel() == P * 2 * n * L.d(),
              "network_forward: shapes do not match the layout");
  check_taylor(taylor, {&s_nu, &s_theta, &s_br, &s_bi}, params, 2 * n + 2 * n * L.d(), nonlinear || truncate);
  TORCH_CHECK(taylor.empty() || taylor.size() == 5,
              "network_forward: the Taylor correction needs the previous parameters");
  auto opts = params.options();
  at::Tensor out = at::empty({P, A}, opts), new_hidden = at::empty({P, n, 2}, opts);
  at::Tensor y = at::empty({P, 2 * n}, opts), x = at::empty({P, L.d()}, opts);
  FeatureTape blocks(dims, P, opts);
  std::vector<at::Tensor> head = head_tape_tensors(L.head, P, opts);
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "network_forward", [&] {
    std::vector<scalar_t*> in_p, nd_p, is_p;
    blocks.pointers(in_p, nd_p, is_p);
    HeadTape<scalar_t> head_tape = head_tape_of<scalar_t>(head);
    forward_impl<scalar_t>(L, P, params.data_ptr<scalar_t>(), coeffs.data_ptr<scalar_t>(), obs.data_ptr<scalar_t>(), hidden.data_ptr<scalar_t>(),
                           s_nu.data_ptr<scalar_t>(), s_theta.data_ptr<scalar_t>(), s_br.data_ptr<scalar_t>(),
                           s_bi.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), new_hidden.data_ptr<scalar_t>(),
                           y.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), in_p, nd_p, is_p, head_tape, activation,
                           nonlinear, advance, truncate, taylor_of<scalar_t>(taylor));
  });
  return blocks.returned({out, new_hidden, y, x}, head);
}

// The backward pass of ``network_backward``, bound to its arguments, to run later (BackwardPass).
std::shared_ptr<BackwardPass> network_backward_pass(at::Tensor params, std::vector<int64_t> dims, int64_t n, int64_t A,
                                                    int64_t head_width, at::Tensor coeffs, at::Tensor grad, at::Tensor grad_out,
                                                    std::vector<at::Tensor> tape, at::Tensor hidden_prev,
                                                    at::Tensor s_nu, at::Tensor s_theta, at::Tensor s_br,
                                                    at::Tensor s_bi, int64_t activation, bool nonlinear,
                                                    bool next_step, bool truncate, std::vector<at::Tensor> taylor) {
  Layout L = layout_of(dims, n, A, head_width, params);
  const int64_t B = L.blocks();
  TORCH_CHECK(grad.sizes() == params.sizes() && grad.is_contiguous(), "grad must be shaped like params");
  check_coefficients(coeffs, params, n);
  TORCH_CHECK((int64_t)tape.size() == 4 + 3 * B + (head_width ? 4 : 0),
              "network_backward: the tape of network_forward is expected");
  for (auto* t : {&grad_out, &hidden_prev, &s_nu, &s_theta, &s_br, &s_bi}) check(*t, params, "a backward input");
  check_taylor(taylor, {&s_nu, &s_theta, &s_br, &s_bi}, params, 2 * n + 2 * n * L.d(), nonlinear || truncate);
  auto pass = std::make_shared<BackwardPass>();
  pass->P = params.size(0);
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "network_backward", [&] {
    std::vector<const scalar_t*> in_p, nd_p, is_p;
    FeatureTape(tape, 4, B).pointers(in_p, nd_p, is_p);
    HeadTapeIn<scalar_t> head(tape, 4 + 3 * B, head_width != 0);
    const Taylor<const scalar_t> correction = taylor_of<const scalar_t>(taylor);
    auto kernel = taylor.empty() ? &backward_impl<scalar_t, false> : &backward_impl<scalar_t, true>;
    // the tensors are captured (kept alive, the corrections' too) with the pointers into them
    auto call = [=, keep = taylor](int64_t p0, int64_t p1, const InlineQrc<scalar_t>* inline_qrc, NextStepB* defer_b) {
      kernel(L, p0, p1, params.data_ptr<scalar_t>(), coeffs.data_ptr<scalar_t>(), s_nu.data_ptr<scalar_t>(),
             s_theta.data_ptr<scalar_t>(), s_br.data_ptr<scalar_t>(), s_bi.data_ptr<scalar_t>(),
             grad_out.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), tape[2].data_ptr<scalar_t>(),
             tape[3].data_ptr<scalar_t>(), hidden_prev.data_ptr<scalar_t>(), tape[1].data_ptr<scalar_t>(), in_p, nd_p,
             is_p, head.input, head.normed, head.inv_std, head.z, activation, nonlinear, next_step, truncate,
             correction, inline_qrc, defer_b);
    };
    pass->run = [=](int64_t p0, int64_t p1) { call(p0, p1, nullptr, nullptr); };
    if (nonlinear) return;  // the linear RTU's B block (BackwardPass::run_deferring for a prior, else run_inline)
    if (next_step) {
      pass->run_deferring = [=](int64_t p, NextStepB& next_b) { call(p, p + 1, nullptr, &next_b); };
      return;
    }
    pass->skip0 = L.Br, pass->skip1 = L.Bi + n * L.d();
    pass->run_inline = [=](int64_t p, const RowUpdate& update, const NextStepB* next_b) {
      const InlineQrc<scalar_t> q = update.inline_qrc<scalar_t>(params, next_b);
      call(p, p + 1, &q, nullptr);
    };
  });
  return pass;
}

void network_backward(at::Tensor params, std::vector<int64_t> dims, int64_t n, int64_t A, int64_t head_width,
                      at::Tensor coeffs, at::Tensor grad,
                      at::Tensor grad_out, std::vector<at::Tensor> tape, at::Tensor hidden_prev, at::Tensor s_nu,
                      at::Tensor s_theta, at::Tensor s_br, at::Tensor s_bi, int64_t activation, bool nonlinear,
                      bool next_step, bool truncate, const RowUpdate* update, std::vector<at::Tensor> taylor) {
  auto pass = network_backward_pass(params, dims, n, A, head_width, coeffs, grad, grad_out, tape, hidden_prev, s_nu, s_theta,
                                    s_br, s_bi, activation, nonlinear, next_step, truncate, taylor);
  if (update) update->check_against(params);
  run_members(*pass, update, params, grad);
}

namespace {

// The TBPTT(1) cells other than the RTU, after the same feature blocks: the GRU (kind 1; PyTorch's equations, from
// the detached h_{t-1}) and the FFN (kind 0: y_t = x_t, no state). Row layout, in MemoryNetwork.parameters() order:
//   feature blocks;  GRU: W_ih (3H x d), W_hh (3H x H), b_ih (3H), b_hh (3H);  head as the RTU's (HeadLayout) on
// y of Y = H values for the GRU and d for the FFN.
struct CellLayout {
  std::vector<int64_t> dims, W, b;
  int64_t kind, H, A, N, Y;
  int64_t Wih = 0, Whh = 0, bih = 0, bhh = 0, end = 0;
  HeadLayout head;
  int64_t d() const { return dims.back(); }
  CellLayout(std::vector<int64_t> dims_, int64_t kind_, int64_t H_, int64_t A_, int64_t Hw, int64_t N_)
      : dims(dims_), kind(kind_), H(kind_ == 1 ? H_ : 0), A(A_), N(N_) {
    TORCH_CHECK(kind == 0 || kind == 1, "cell kind must be 0 (ffn) or 1 (gru)");
    int64_t off = 0;
    for (size_t i = 0; i + 1 < dims.size(); ++i) {
      W.push_back(off);
      off += dims[i + 1] * dims[i];
      b.push_back(off);
      off += dims[i + 1];
    }
    if (kind == 1) {
      Wih = off; off += 3 * H * d();
      Whh = off; off += 3 * H * H;
      bih = off; off += 3 * H;
      bhh = off; off += 3 * H;
    }
    Y = kind == 1 ? H : d();
    end = head.place(Y, Hw, A, off);
    TORCH_CHECK(end <= N, "flat parameter row of ", N, " holds fewer than the network's ", end, " parameters");
  }
};

template <typename T>
inline T sigmoid(T v) {
  return 1 / (1 + std::exp(-v));
}

// GRU:  r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz),
//       c = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 - z) ⊙ c + z ⊙ h;   out = W_o y + b_o.
// gates (P, 4H) keeps r, z, c and W_hn h + b_hn for the backward pass.
template <typename T>
void cell_forward_impl(const CellLayout& L, int64_t P, const T* params, const T* obs, const T* hidden, T* out,
                       T* new_hidden, T* gates, T* x_tape, std::vector<T*>& block_inputs,
                       std::vector<T*>& block_normed, std::vector<T*>& block_inv_std, HeadTape<T>& head_tape,
                       int64_t activation) {
  const int64_t H = L.H, d = L.d(), A = L.A;
  std::vector<T> a_buf, gi(3 * H), gh(3 * H);
  for (int64_t p = 0; p < P; ++p) {
    const T* row = params + p * L.N;
    T* x = x_tape + p * d;
    features_forward(L.dims, L.W, L.b, row, obs + p * L.dims[0], p, x, block_inputs, block_normed, block_inv_std,
                     activation, a_buf);
    const T* y = x;
    if (L.kind == 1) {
      const T* h = hidden + p * H;
      for (int64_t k = 0; k < 3 * H; ++k) {
        T acc_i = row[L.bih + k], acc_h = row[L.bhh + k];
        const T* wi = row + L.Wih + k * d;
        const T* wh = row + L.Whh + k * H;
#pragma omp simd reduction(+ : acc_i)
        for (int64_t j = 0; j < d; ++j) acc_i += wi[j] * x[j];
#pragma omp simd reduction(+ : acc_h)
        for (int64_t j = 0; j < H; ++j) acc_h += wh[j] * h[j];
        gi[k] = acc_i;
        gh[k] = acc_h;
      }
      T* g = gates + p * 4 * H;
      T* hn = new_hidden + p * H;
      for (int64_t u = 0; u < H; ++u) {
        const T r = sigmoid(gi[u] + gh[u]), z = sigmoid(gi[H + u] + gh[H + u]);
        const T c = std::tanh(gi[2 * H + u] + r * gh[2 * H + u]);
        g[u] = r;
        g[H + u] = z;
        g[2 * H + u] = c;
        g[3 * H + u] = gh[2 * H + u];
        hn[u] = (1 - z) * c + z * h[u];
      }
      y = hn;
    }
    head_forward(L.head, row, y, p, out + p * A, head_tape, activation, a_buf);
  }
}

// d(grad_out · out_t)/dθ through one step from the detached h_{t-1} (TBPTT(1)), into row p of grad (p0 ≤ p < p1).
template <typename T>
void cell_backward_impl(const CellLayout& L, int64_t p0, int64_t p1, const T* params, const T* grad_out, T* grad,
                        const T* hidden_prev, const T* new_hidden, const T* gates, const T* x_tape,
                        const std::vector<const T*>& block_inputs, const std::vector<const T*>& block_normed,
                        const std::vector<const T*>& block_inv_std, const HeadTapeIn<T>& head, int64_t activation,
                        const InlineQrc<T>* inline_qrc, NextStepB* defer_b) {
  const int64_t H = L.H, d = L.d(), A = L.A;
  std::vector<T> dy, dgi(3 * H), dgh(3 * H), dx, dn, da;
  for (int64_t p = p0; p < p1; ++p) {
    const T* row = params + p * L.N;
    T* g_row = grad + p * L.N;
    const T* go = grad_out + p * A;
    const T* x = x_tape + p * d;
    const T* y = L.kind == 1 ? new_hidden + p * H : x;
    head_backward(L.head, row, g_row, y, p, go, head.input, head.normed, head.inv_std, head.z, activation, dy, dn, da);
    if (L.kind == 0) {
      dx.assign(dy.begin(), dy.end());
    } else {
      const T* h = hidden_prev + p * H;
      const T* g = gates + p * 4 * H;
      for (int64_t u = 0; u < H; ++u) {
        const T r = g[u], z = g[H + u], c = g[2 * H + u], hn_pre = g[3 * H + u];
        const T dc = dy[u] * (1 - z) * (1 - c * c);  // d/d(pre-activation of c)
        const T dz = dy[u] * (h[u] - c) * z * (1 - z);
        const T dr = dc * hn_pre * r * (1 - r);
        dgi[u] = dr;
        dgi[H + u] = dz;
        dgi[2 * H + u] = dc;
        dgh[u] = dr;
        dgh[H + u] = dz;
        dgh[2 * H + u] = dc * r;
      }
      dx.assign(d, 0);
      if (defer_b) {  // the weights' g_next left to the current pass (NextStepB)
        defer_b->w.assign(dgi.begin(), dgi.end());
        defer_b->w.insert(defer_b->w.end(), dgh.begin(), dgh.end());
        defer_b->x = x, defer_b->h = h;
      }
      if (inline_qrc) {  // the weights updated as their gradients are formed (InlineQrc), dx from W_ih before
        const QrcStep<T> q = inline_qrc->step(p);
        T* th = inline_qrc->params + p * L.N;
        T* zt = inline_qrc->trace + p * L.N;
        const NextStepB* nb = inline_qrc->next_b;
        const T* xn = nb ? static_cast<const T*>(nb->x) : nullptr;
        const T* hn = nb ? static_cast<const T*>(nb->h) : nullptr;
        T* dxp = dx.data();
        for (int64_t k = 0; k < 3 * H; ++k) {
          T* wi = th + L.Wih + k * d;
          T* wh = th + L.Whh + k * H;
          T* zi = zt + L.Wih + k * d;
          T* zh = zt + L.Whh + k * H;
          const T ei = dgi[k], eh = dgh[k];
          if (nb) {
            const T ni = (T)nb->w[k], nh = (T)nb->w[3 * H + k];
#pragma omp simd
            for (int64_t j = 0; j < d; ++j) {
              dxp[j] += wi[j] * ei;
              wi[j] += q.lr * q.with_next(zi[j], ei * x[j], wi[j], ni * xn[j]);
            }
#pragma omp simd
            for (int64_t j = 0; j < H; ++j) wh[j] += q.lr * q.with_next(zh[j], eh * h[j], wh[j], nh * hn[j]);
          } else {  // h: no g_next
#pragma omp simd
            for (int64_t j = 0; j < d; ++j) {
              dxp[j] += wi[j] * ei;
              wi[j] += q.lr * q.alone(zi[j], ei * x[j], wi[j]);
            }
#pragma omp simd
            for (int64_t j = 0; j < H; ++j) wh[j] += q.lr * q.alone(zh[j], eh * h[j], wh[j]);
          }
          g_row[L.bih + k] = ei;
          g_row[L.bhh + k] = eh;
        }
      } else {
        for (int64_t k = 0; k < 3 * H; ++k) {
          T* gwi = g_row + L.Wih + k * d;
          T* gwh = g_row + L.Whh + k * H;
          if (!defer_b) {
            for (int64_t j = 0; j < d; ++j) gwi[j] = dgi[k] * x[j];
            for (int64_t j = 0; j < H; ++j) gwh[j] = dgh[k] * h[j];
          }
          g_row[L.bih + k] = dgi[k];
          g_row[L.bhh + k] = dgh[k];
        }
        for (int64_t k = 0; k < 3 * H; ++k) {
          const T* wi = row + L.Wih + k * d;
          const T e = dgi[k];
#pragma omp simd
          for (int64_t j = 0; j < d; ++j) dx[j] += wi[j] * e;
        }
      }
    }
    features_backward(L.dims, L.W, L.b, row, g_row, p, dx, block_inputs, block_normed, block_inv_std, activation, dn,
                      da);
  }
}

}  // namespace

// GRU / FFN forward: returns [out, new hidden (P, H), gates (P, 4H), x, block inputs..., block normed..., 1/σ...].
std::vector<at::Tensor> cell_forward(at::Tensor params, std::vector<int64_t> dims, int64_t kind, int64_t H,
                                     int64_t A, int64_t head_width, at::Tensor obs, at::Tensor hidden,
                                     int64_t activation) {
  TORCH_CHECK(params.dim() == 2 && params.is_contiguous(), "params must be a contiguous (P, N) buffer");
  CellLayout L(dims, kind, H, A, head_width, params.size(1));
  const int64_t P = params.size(0);
  check(obs, params, "obs");
  check(hidden, params, "hidden");
  TORCH_CHECK(obs.numel() == P * dims[0] && hidden.numel() == P * L.H, "cell_forward: shapes do not match");
  auto opts = params.options();
  at::Tensor out = at::empty({P, A}, opts), new_hidden = at::empty({P, L.H}, opts);
  at::Tensor gates = at::empty({P, 4 * L.H}, opts), x = at::empty({P, L.d()}, opts);
  FeatureTape blocks(dims, P, opts);
  std::vector<at::Tensor> head = head_tape_tensors(L.head, P, opts);
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "cell_forward", [&] {
    std::vector<scalar_t*> in_p, nd_p, is_p;
    blocks.pointers(in_p, nd_p, is_p);
    HeadTape<scalar_t> head_tape = head_tape_of<scalar_t>(head);
    cell_forward_impl<scalar_t>(L, P, params.data_ptr<scalar_t>(), obs.data_ptr<scalar_t>(),
                                hidden.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                new_hidden.data_ptr<scalar_t>(), gates.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                in_p, nd_p, is_p, head_tape, activation);
  });
  return blocks.returned({out, new_hidden, gates, x}, head);
}

// The backward pass of ``cell_backward``, bound to its arguments, to run later (BackwardPass).
std::shared_ptr<BackwardPass> cell_backward_pass(at::Tensor params, std::vector<int64_t> dims, int64_t kind, int64_t H,
                                                 int64_t A, int64_t head_width, at::Tensor grad, at::Tensor grad_out,
                                                 std::vector<at::Tensor> tape, at::Tensor hidden_prev,
                                                 int64_t activation) {
  TORCH_CHECK(params.dim() == 2 && params.is_contiguous(), "params must be a contiguous (P, N) buffer");
  CellLayout L(dims, kind, H, A, head_width, params.size(1));
  const int64_t B = (int64_t)dims.size() - 1;
  TORCH_CHECK(grad.sizes() == params.sizes() && grad.is_contiguous(), "grad must be shaped like params");
  TORCH_CHECK((int64_t)tape.size() == 4 + 3 * B + (head_width ? 4 : 0),
              "cell_backward: the tape of cell_forward is expected");
  check(grad_out, params, "grad_out");
  check(hidden_prev, params, "hidden_prev");
  auto pass = std::make_shared<BackwardPass>();
  pass->P = params.size(0);
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "cell_backward", [&] {
    std::vector<const scalar_t*> in_p, nd_p, is_p;
    FeatureTape(tape, 4, B).pointers(in_p, nd_p, is_p);
    HeadTapeIn<scalar_t> head(tape, 4 + 3 * B, head_width != 0);
    auto kernel = [=](int64_t p0, int64_t p1, const InlineQrc<scalar_t>* inline_qrc, NextStepB* defer_b) {
      cell_backward_impl<scalar_t>(L, p0, p1, params.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(),
                                   grad.data_ptr<scalar_t>(), hidden_prev.data_ptr<scalar_t>(),
                                   tape[1].data_ptr<scalar_t>(), tape[2].data_ptr<scalar_t>(),
                                   tape[3].data_ptr<scalar_t>(), in_p, nd_p, is_p, head, activation, inline_qrc,
                                   defer_b);
    };
    pass->run = [=](int64_t p0, int64_t p1) { kernel(p0, p1, nullptr, nullptr); };
    if (L.kind != 1) return;  // the GRU's weights, W_ih and W_hh (BackwardPass::run_inline, run_deferring)
    pass->skip0 = L.Wih, pass->skip1 = L.bih;
    pass->run_inline = [=](int64_t p, const RowUpdate& update, const NextStepB* next_b) {
      const InlineQrc<scalar_t> q = update.inline_qrc<scalar_t>(params, next_b);
      kernel(p, p + 1, &q, nullptr);
    };
    pass->run_deferring = [=](int64_t p, NextStepB& next_b) { kernel(p, p + 1, nullptr, &next_b); };
  });
  return pass;
}

void cell_backward(at::Tensor params, std::vector<int64_t> dims, int64_t kind, int64_t H, int64_t A,
                   int64_t head_width, at::Tensor grad, at::Tensor grad_out, std::vector<at::Tensor> tape,
                   at::Tensor hidden_prev, int64_t activation, const RowUpdate* update) {
  auto pass = cell_backward_pass(params, dims, kind, H, A, head_width, grad, grad_out, tape, hidden_prev, activation);
  if (update) update->check_against(params);
  run_members(*pass, update, params, grad);
}

// The digest of this file, set by the install-time build (setup.py): the loader uses that build only while the source
// is the one it was built from.
#ifndef RTU_SOURCE_DIGEST
#define RTU_SOURCE_DIGEST ""
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.attr("source_digest") = RTU_SOURCE_DIGEST;
  // the constants this file shares with the Python (rtu_core/layers.py, rtu_core/cells/rtu.py), tested equal
  m.attr("layer_norm_eps") = kLayerNormEps;
  m.attr("leaky_slope") = kLeakySlope;
  m.attr("input_scale_eps") = kInputScaleEps;
  m.def("rtu_coefficients", &rtu_coefficients, "the RTU coefficients of every member, for the passes that follow");
  m.def("network_forward", &network_forward, "forward pass (and in-place RTRL advance) of a population of networks");
  m.def("network_backward", &network_backward,
        "every parameter's gradient into a flat (P, N) buffer (with an update: each row updated as it is computed)");
  m.def("cell_forward", &cell_forward, "forward pass of a population of GRU / FFN networks");
  m.def("cell_backward", &cell_backward, "their one-step (TBPTT(1)) gradients into a flat (P, N) buffer");
  m.def("network_backward_pass", &network_backward_pass, "network_backward bound to its arguments, to run later");
  m.def("cell_backward_pass", &cell_backward_pass, "cell_backward bound to its arguments, to run later");
  pybind11::class_<BackwardPass, std::shared_ptr<BackwardPass>>(m, "BackwardPass");
  pybind11::class_<RowUpdate>(m, "RowUpdate");
  m.def("obgd_update", &obgd_update, "ObGD of each member's row, for a backward pass to apply as it goes");
  m.def("qrc_update", &qrc_update, "QRC(lambda) of each member's row, for a backward pass to apply as it goes");
  m.def("qrc_choose", &qrc_choose, "QRC(lambda)'s epsilon-greedy actions with Q(o, a), h(o, a) and the Watkins flags");
  m.def("qrc_targets", &qrc_targets, "QRC(lambda)'s TD errors, update coefficients and output gradients");
  m.def("categorical_sample", &categorical_sample, "Stream AC(lambda)'s categorical actions by the inverse CDF");
  m.def("stream_ac_targets", &stream_ac_targets, "Stream AC(lambda)'s TD errors and policy output gradients");
}
