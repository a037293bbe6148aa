"""`ladder export rung=NAME [budget=LABEL] out=DIR`: a finished rung's budget as a transformers model and tokenizer,
so that lm-evaluation-harness (or anything that reads a Hugging Face checkpoint) scores exactly the weights and
tokens ladder scores:

    lm_eval --model hf --model_args pretrained=DIR,add_bos_token=True --tasks hellaswag

ladder starts every request with the end-of-text token (documents follow one in training); the exported tokenizer
adds it as its BOS when asked for special tokens, which `add_bos_token=True` does, and never otherwise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import OmegaConf

from ladder.data import TokenData, on_cluster, open_data
from ladder.data.tokenizers import EOS_TEXT, load_saved
from ladder.errors import require
from ladder.plan import Plan
from ladder.train.evaluate import budget_weights, finished_rung
from ladder.model.build import build_model


def hf_tokenizer(tokenizer):
    """A transformers PreTrainedTokenizerFast of a ladder tokenizer (bpe or hf), EOS doubling as BOS."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    require(tokenizer.kind in ("bpe", "hf"), f"data.tokenizer.kind={tokenizer.kind}: export needs a bpe or hf "
                                             f"tokenizer (raw bytes have no Hugging Face tokenizer)")
    backend = Tokenizer.from_str(tokenizer.tokenizer.to_str())
    eos_text = backend.id_to_token(tokenizer.eos_id) or EOS_TEXT
    backend.post_processor = TemplateProcessing(single=f"{eos_text} $A", pair=f"{eos_text} $A $B",
                                                special_tokens=[(eos_text, tokenizer.eos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=eos_text, eos_token=eos_text,
                                   pad_token=eos_text)


def export_rung(cfg, plan: Plan) -> Path:
    rung, run, summary, finished = finished_rung(cfg, plan)
    label = str(cfg.budget) if cfg.get("budget") else (finished[-1] if finished else None)
    require(label in finished, f"budget={label}: not a finished budget of {rung.name}; use one of "
                               f"{', '.join(finished) or '(none yet)'}")
    data = TokenData(open_data(OmegaConf.to_container(cfg.data, resolve=True), plan.data_tokens,
                               may_prepare=not on_cluster()), verify=False)
    require(data.fingerprint == summary.get("data_fingerprint"),
            f"data: differs from the data {rung.name} was trained on; pass the same data.* overrides as its training")
    out = Path(cfg.out) if cfg.out else run.path / "hf" / label
    require(not out.exists() or (out / "config.json").is_file(),
            f"out={out}: exists and is not an earlier export (no config.json); name a new directory, nothing was "
            f"written")
    model = build_model(rung.spec, seed=rung.seed)
    model.load_state_dict(budget_weights(run, label, summary["budgets"][label]))
    model.config.bos_token_id = model.config.eos_token_id = int(data.manifest["tokenizer"]["eos_id"])
    # written beside, then renamed: a half-written export is never taken for a whole one
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    hf_tokenizer(load_saved(data.manifest["tokenizer"], data.directory)).save_pretrained(partial)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out
