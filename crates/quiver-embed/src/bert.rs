//! [`Bert`]: the BERT encoder of all-MiniLM-L6-v2 with mean pooling, run on sequences laid end
//! to end without padding.
//!
//! Every step of BERT but attention works on each token alone, so a forward pass takes the
//! tokens of several texts as one `(tokens, 384)` matrix: the matrix products (candle's `matmul`
//! on contiguous tensors, gemm underneath) see no padding rows, and [`kernels::attention`]
//! lets each token attend to its own text only, which is exactly what the attention mask does
//! to a padded batch. Bias, GELU, residual and layer norm are fused into one pass over each
//! product's output ([`crate::kernels`]). The result of a text does not depend on the others
//! it shares a pass with (up to float rounding in the matrix products).

use candle_core::{DType, Device, Storage, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::kernels::{self, AttentionScratch};

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

    /// `x · W^T` (without the bias) of `x` = `rows` rows of `in` floats, as a contiguous tensor.
    fn product(&self, x: &[f32], rows: usize) -> candle_core::Result<Tensor> {
        let input = self.weight.dim(0)?;
        Tensor::from_slice(x, (rows, input), &Device::Cpu)?.matmul(&self.weight)
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
    heads: usize,
    max_positions: usize,
    eps: f32,
    arch: pulp::Arch,
}

/// Buffers of one forward pass, reused from layer to layer.
#[derive(Default)]
struct Scratch {
    hidden: Vec<f32>,
    attended: Vec<f32>,
    context: Vec<f32>,
    intermediate: Vec<f32>,
    attention: AttentionScratch,
}

impl Bert {
    /// Loads the weights (`bert.`-prefixed or not) that `config` describes.
    pub(crate) fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        if config.hidden_act != HiddenAct::Gelu {
            candle_core::bail!("hidden_act {:?}: only gelu is supported", config.hidden_act);
        }
        if config.hidden_size != 32 * config.num_attention_heads {
            candle_core::bail!(
                "hidden_size {} is not 32 per head for {} heads",
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
            heads: config.num_attention_heads,
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
        let w = self.width;
        let mut s = Scratch::default();
        s.hidden.resize(tokens * w, 0.0);
        s.attended.resize(tokens * w, 0.0);
        s.context.resize(tokens * w, 0.0);
        self.vectorized(
            #[inline(always)]
            || self.embeddings(seqs, &mut s.hidden),
        );
        for layer in &self.layers {
            self.layer(layer, &lens, &mut s)?;
        }
        Ok(pool(&s.hidden, &lens, w))
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

    /// One encoder layer, `s.hidden` in and out.
    fn layer(&self, layer: &Layer, lens: &[usize], s: &mut Scratch) -> candle_core::Result<()> {
        let (w, eps, tokens) = (self.width, self.eps, s.hidden.len() / self.width);
        let qkv = layer.qkv.product(&s.hidden, tokens)?;
        with_data(&qkv, |qkv| {
            self.vectorized(
                #[inline(always)]
                || {
                    s.intermediate.clear();
                    s.intermediate.extend_from_slice(qkv);
                    kernels::add_bias(&mut s.intermediate, &layer.qkv.bias);
                    kernels::attention(
                        &s.intermediate,
                        lens,
                        w,
                        self.heads,
                        &mut s.context,
                        &mut s.attention,
                    );
                },
            )
        })?;
        let out = layer.attention_out.product(&s.context, tokens)?;
        with_data(&out, |out| {
            self.vectorized(
                #[inline(always)]
                || {
                    kernels::bias_residual_layer_norm(
                        &mut s.attended,
                        out,
                        &layer.attention_out.bias,
                        &s.hidden,
                        layer.attention_norm.parts(),
                        eps,
                    )
                },
            )
        })?;
        let inter = layer.intermediate.product(&s.attended, tokens)?;
        with_data(&inter, |inter| {
            self.vectorized(
                #[inline(always)]
                || {
                    s.intermediate.clear();
                    s.intermediate.extend_from_slice(inter);
                    kernels::bias_gelu(&mut s.intermediate, &layer.intermediate.bias);
                },
            )
        })?;
        let out = layer.output.product(&s.intermediate, tokens)?;
        with_data(&out, |out| {
            self.vectorized(
                #[inline(always)]
                || {
                    kernels::bias_residual_layer_norm(
                        &mut s.hidden,
                        out,
                        &layer.output.bias,
                        &s.attended,
                        layer.output_norm.parts(),
                        eps,
                    )
                },
            )
        })?;
        Ok(())
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
