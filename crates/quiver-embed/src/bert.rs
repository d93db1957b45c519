//! [`Bert`]: the BERT encoder of all-MiniLM-L6-v2 with mean pooling, run on sequences laid end
//! to end without padding.
//!
//! Every step of BERT but attention works on each token alone, so a forward pass takes the
//! tokens of several texts as one `(tokens, 384)` matrix: the matrix products (candle's `matmul`
//! on contiguous tensors, gemm underneath) see no padding rows, and attention is computed per
//! text over its own tokens only, which is exactly what the attention mask does to a padded
//! batch. Bias, GELU, residual and layer norm are fused into one pass over each
//! product's output ([`crate::kernels`]). The result of a text does not depend on the others
//! it shares a pass with (up to float rounding in the matrix products).

use candle_core::{DType, Device, Storage, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::kernels::{self, HEAD_DIM};

/// A layer norm's scale and shift.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    fn load(vb: VarBuilder, width: usize) -> candle_core::Result<Self> {
        Ok(Self {
            gamma: vb.get(width, "weight")?.to_vec1()?,
            beta: vb.get(width, "bias")?.to_vec1()?,
        })
    }

    fn parts(&self) -> (&[f32], &[f32]) {
        (&self.gamma, &self.beta)
    }
}

/// A dense layer: the weight transposed to `(in, out)` and contiguous, so that `x.matmul(w)`
/// hands gemm a plain row-major right-hand side; the bias is added by the fused kernels.
struct Dense {
    weight: Tensor,
    bias: Vec<f32>,
}

impl Dense {
    /// Loads `names` (`[out_i, in]` each) as one layer of `sum(out_i)` outputs.
    fn load(vb: &VarBuilder, names: &[&str], dims: (usize, usize)) -> candle_core::Result<Self> {
        let (out, input) = dims;
        let mut weights = Vec::new();
        let mut bias = Vec::new();
        for name in names {
            weights.push(vb.get((out, input), &format!("{name}.weight"))?);
            bias.extend(vb.get(out, &format!("{name}.bias"))?.to_vec1::<f32>()?);
        }
        Ok(Self {
            weight: Tensor::cat(&weights, 0)?.t()?.contiguous()?,
            bias,
        })
    }

    /// `x · W^T` (without the bias), a new contiguous `(rows, out)` tensor.
    fn product(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight)
    }

    /// The output width.
    fn width(&self) -> usize {
        self.bias.len()
    }
}

/// One encoder layer.
struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

/// The all-MiniLM-L6-v2 encoder on the CPU.
pub(crate) struct Bert {
    word_embeddings: Vec<f32>,
    position_embeddings: Vec<f32>,
    /// Row 0 of the token-type embeddings: every token is of type 0.
    token_type_embedding: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    width: usize,
    max_positions: usize,
    eps: f32,
    arch: pulp::Arch,
}

impl Bert {
    /// Loads the weights (`bert.`-prefixed or not) that `config` describes.
    pub(crate) fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        if config.hidden_act != HiddenAct::Gelu {
            candle_core::bail!("hidden_act {:?}: only gelu is supported", config.hidden_act);
        }
        if config.hidden_size != HEAD_DIM * config.num_attention_heads {
            candle_core::bail!(
                "hidden_size {} is not {HEAD_DIM} per head for {} heads",
                config.hidden_size,
                config.num_attention_heads
            );
        }
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let (width, inter) = (config.hidden_size, config.intermediate_size);
        let emb = vb.pp("embeddings");
        let token_types = emb.get(
            (config.type_vocab_size, width),
            "token_type_embeddings.weight",
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp(format!("encoder.layer.{i}"));
                let attention = vb.pp("attention");
                Ok(Layer {
                    qkv: Dense::load(
                        &attention.pp("self"),
                        &["query", "key", "value"],
                        (width, width),
                    )?,
                    attention_out: Dense::load(
                        &attention.pp("output"),
                        &["dense"],
                        (width, width),
                    )?,
                    attention_norm: Norm::load(attention.pp("output.LayerNorm"), width)?,
                    intermediate: Dense::load(&vb.pp("intermediate"), &["dense"], (inter, width))?,
                    output: Dense::load(&vb.pp("output"), &["dense"], (width, inter))?,
                    output_norm: Norm::load(vb.pp("output.LayerNorm"), width)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        let flat = |t: Tensor| t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>();
        Ok(Self {
            word_embeddings: flat(emb.get((config.vocab_size, width), "word_embeddings.weight")?)?,
            position_embeddings: flat(emb.get(
                (config.max_position_embeddings, width),
                "position_embeddings.weight",
            )?)?,
            token_type_embedding: token_types.get(0)?.to_vec1()?,
            embedding_norm: Norm::load(emb.pp("LayerNorm"), width)?,
            layers,
            width,
            max_positions: config.max_position_embeddings,
            eps: config.layer_norm_eps as f32,
            arch: pulp::Arch::new(),
        })
    }

    /// The mean-pooled, L2-normalized last hidden states of each token-id sequence (each at
    /// most `max_position_embeddings` long), in order.
    pub(crate) fn embed(&self, seqs: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        if let Some(&len) = lens.iter().find(|&&l| l > self.max_positions) {
            candle_core::bail!("{len} tokens, more than {} positions", self.max_positions);
        }
        let tokens: usize = lens.iter().sum();
        let mut hidden = vec![0f32; tokens * self.width];
        self.vectorized(
            #[inline(always)]
            || self.embeddings(seqs, &mut hidden),
        );
        let mut hidden = Tensor::from_vec(hidden, (tokens, self.width), &Device::Cpu)?;
        for layer in &self.layers {
            hidden = self.layer(layer, &lens, &hidden)?;
        }
        with_data(&hidden, |hidden| pool(hidden, &lens, self.width))
    }

    /// Runs `f` compiled for the best vector instructions of this CPU. `f` must be a closure
    /// that mutates what it captures and is marked `#[inline(always)]`: called through
    /// `FnMut`, its body then inlines into pulp's `#[target_feature]` function (a closure that
    /// only reads would be called through a shim that does not inline, and run unvectorized).
    #[inline(always)]
    fn vectorized<R>(&self, f: impl FnMut() -> R) -> R {
        self.arch.dispatch(Vectorized(f))
    }

    /// Word + token type + position embeddings, layer-normalized, one row per token.
    #[inline(always)]
    fn embeddings(&self, seqs: &[&[u32]], hidden: &mut [f32]) {
        let w = self.width;
        let mut rows = hidden.chunks_exact_mut(w);
        for seq in seqs {
            for (pos, (&id, row)) in seq.iter().zip(&mut rows).enumerate() {
                let word = &self.word_embeddings[id as usize * w..][..w];
                let position = &self.position_embeddings[pos * w..][..w];
                for (((r, x), t), p) in row
                    .iter_mut()
                    .zip(word)
                    .zip(&self.token_type_embedding)
                    .zip(position)
                {
                    *r = (x + t) + p;
                }
                let (gamma, beta) = self.embedding_norm.parts();
                kernels::layer_norm_row(row, gamma, beta, self.eps);
            }
        }
    }

    /// One encoder layer: `(tokens, width)` hidden states in, the next ones out. Each fused
    /// kernel writes a fresh buffer that becomes the next product's input without a copy.
    fn layer(&self, layer: &Layer, lens: &[usize], hidden: &Tensor) -> candle_core::Result<Tensor> {
        let w = self.width;
        let tokens = hidden.dim(0)?;
        let qkv = layer.qkv.product(hidden)?;
        let mut context = vec![0f32; tokens * w];
        let mut start = 0;
        for &len in lens {
            let rows = start * 3 * w..(start + len) * 3 * w;
            let out = &mut context[start * w..(start + len) * w];
            with_data(&qkv, |qkv| self.attention(&qkv[rows], &layer.qkv.bias, out))??;
            start += len;
        }
        let context = Tensor::from_vec(context, (tokens, w), &Device::Cpu)?;
        let attended = self.add_norm(
            &layer.attention_out.product(&context)?,
            &layer.attention_out.bias,
            hidden,
            &layer.attention_norm,
        )?;
        let inter = layer.intermediate.product(&attended)?;
        let mut activated = vec![0f32; tokens * layer.intermediate.width()];
        with_data(&inter, |inter| {
            self.vectorized(
                #[inline(always)]
                || kernels::bias_gelu(&mut activated, inter, &layer.intermediate.bias),
            )
        })?;
        let activated = Tensor::from_vec(activated, inter.shape(), &Device::Cpu)?;
        self.add_norm(
            &layer.output.product(&activated)?,
            &layer.output.bias,
            &attended,
            &layer.output_norm,
        )
    }

    /// Multi-head self-attention of one sequence: `qkv` holds its tokens' `[query | key |
    /// value]` rows before `bias`, `out` gets their `width`-wide outputs. Per head,
    /// `softmax(q k^T / sqrt(d)) v` with two batched candle matmuls over the heads; the
    /// `(heads, len, len)` scores are one sequence's, never padded.
    fn attention(&self, qkv: &[f32], bias: &[f32], out: &mut [f32]) -> candle_core::Result<()> {
        let w = self.width;
        let len = qkv.len() / (3 * w);
        let heads = w / HEAD_DIM;
        let part = |part: usize| {
            let mut x = vec![0f32; len * w];
            self.vectorized(
                #[inline(always)]
                || kernels::split_heads(&mut x, qkv, bias, part, w),
            );
            Tensor::from_vec(x, (heads, len, HEAD_DIM), &Device::Cpu)
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = q.matmul(&k.t()?)?;
        let mut probs = vec![0f32; heads * len * len];
        with_data(&scores, |scores| {
            self.vectorized(
                #[inline(always)]
                || kernels::attention_softmax(&mut probs, scores, len),
            )
        })?;
        let probs = Tensor::from_vec(probs, (heads, len, len), &Device::Cpu)?;
        let context = probs.matmul(&v)?;
        with_data(&context, |context| {
            self.vectorized(
                #[inline(always)]
                || kernels::merge_heads(out, context, w),
            )
        })
    }

    /// `layer_norm(x + bias + residual)`, a new `(tokens, width)` tensor.
    fn add_norm(
        &self,
        x: &Tensor,
        bias: &[f32],
        residual: &Tensor,
        norm: &Norm,
    ) -> candle_core::Result<Tensor> {
        let mut out = vec![0f32; x.elem_count()];
        with_data(x, |x| {
            with_data(residual, |residual| {
                self.vectorized(
                    #[inline(always)]
                    || {
                        kernels::bias_residual_layer_norm(
                            &mut out,
                            x,
                            bias,
                            residual,
                            norm.parts(),
                            self.eps,
                        )
                    },
                )
            })
        })??;
        Tensor::from_vec(out, x.shape(), &Device::Cpu)
    }
}

/// A closure as pulp's [`pulp::WithSimd`], called through `FnMut` (see [`Bert::vectorized`]).
struct Vectorized<F>(F);

impl<R, F: FnMut() -> R> pulp::WithSimd for Vectorized<F> {
    type Output = R;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(mut self, _simd: S) -> R {
        (self.0)()
    }
}

/// Calls `f` with the floats of a contiguous CPU tensor, without copying them.
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("not a CPU tensor");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("not a contiguous tensor");
    };
    Ok(f(&cpu.as_slice::<f32>()?[start..end]))
}

/// sentence-transformers' mean pooling (the sum of a text's token vectors over their count)
/// and `Normalize` (`x / max(||x||, 1e-12)`).
fn pool(hidden: &[f32], lens: &[usize], w: usize) -> Vec<Vec<f32>> {
    let mut rows = hidden.chunks_exact(w);
    lens.iter()
        .map(|&len| {
            let mut mean = vec![0f32; w];
            for row in rows.by_ref().take(len) {
                for (m, x) in mean.iter_mut().zip(row) {
                    *m += x;
                }
            }
            let count = (len as f32).max(1e-9);
            for m in &mut mean {
                *m /= count;
            }
            let norm = kernels::sum(&mean.iter().map(|x| x * x).collect::<Vec<_>>())
                .sqrt()
                .max(1e-12);
            for m in &mut mean {
                *m /= norm;
            }
            mean
        })
        .collect()
}
