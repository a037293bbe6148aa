"""`ladder export rung=NAME [budget=LABEL] out=DIR`: a finished rung's budget as a transformers model and tokenizer,
so that lm-evaluation-harness (or anything that reads a Hugging Face checkpoint) scores exactly the weights and
tokens ladder scores:

    lm_eval --model hf --model_args pretrained=DIR,add_bos_token=True --tasks hellaswag

ladder starts every request with the end-of-text token (documents follow one in training); the exported tokenizer
adds it as its BOS when asked for special tokens, which `add_bos_token=True` does, and never otherwise. A rung on
raw bytes gets a byte-level tokenizer: each byte is its own id, as in ladder.

Every export holds `.ladder-export.json` (what it is: ladder, rung, budget, the rung's identity and data fingerprint,
and the files it wrote). `out=` may be a new or empty directory, or an earlier export that holds nothing else: any
other directory (a model of your own, the current directory or one above it) is refused before any work, and nothing
of yours is ever deleted.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from ladder import __version__
from ladder.data import TokenData, on_cluster, open_data
from ladder.data.tokenizers import EOS_TEXT, load_saved
from ladder.errors import require
from ladder.io import atomic_write_json, read_json, refuse_link, temp_dir_beside
from ladder.plan import Plan
from ladder.train.evaluate import budget_weights, finished_rung
from ladder.model.build import build_model

MARKER = ".ladder-export.json"


def byte_chars() -> list[str]:
    """The printable character that stands for each byte in a byte-level tokenizer (GPT-2's table, which the
    `tokenizers` ByteLevel pre-tokenizer and decoder use), in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(others)) for b in range(256)]


def byte_backend(eos_id: int):
    """ladder's bytes tokenizer as a `tokenizers.Tokenizer`: the text's UTF-8 bytes, each byte's value its id (no
    merges), the EOS being the byte `eos_id` stands for."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    chars = byte_chars()
    backend = Tokenizer(models.BPE(vocab={c: b for b, c in enumerate(chars)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)  # one char a byte
    backend.decoder = decoders.ByteLevel()
    return backend, chars[eos_id]


def hf_tokenizer(tokenizer):
    """A transformers PreTrainedTokenizerFast of a ladder tokenizer, EOS doubling as BOS."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    if tokenizer.kind == "bytes":
        backend, eos_text = byte_backend(tokenizer.eos_id)
    else:
        backend = Tokenizer.from_str(tokenizer.tokenizer.to_str())
        eos_text = backend.id_to_token(tokenizer.eos_id) or EOS_TEXT
    backend.post_processor = TemplateProcessing(single=f"{eos_text} $A", pair=f"{eos_text} $A $B",
                                                special_tokens=[(eos_text, tokenizer.eos_id)])
    # the bytes EOS is a byte's own character: with split_special_tokens text is never read as special tokens
    # (ladder reads "<|endoftext|>" in text as bytes, and an EOS only where it puts one)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=eos_text, eos_token=eos_text,
                                   pad_token=eos_text, split_special_tokens=tokenizer.kind == "bytes")


def check_out(out: Path) -> None:
    """Refuse, in one line, an `out=` this export may not replace: ladder replaces only its own earlier export
    (its marker says so) holding nothing it did not write, and never the current directory or one above it."""
    here = Path.cwd().resolve()
    require(out.resolve() != here and out.resolve() not in here.parents,
            f"out={out}: the current directory, or one above it; name a new directory (nothing was written)")
    refuse_link(out)
    if not out.exists():
        return
    require(out.is_dir(), f"out={out}: a file; name a new directory (nothing was written)")
    if not os.listdir(out):
        return  # an empty directory holds nothing to lose
    marker = out / MARKER
    require(marker.is_file() and not marker.is_symlink(),
            f"out={out}: exists and is not an export of ladder's (no {MARKER}); name a new directory, or remove "
            f"it yourself (nothing was written)")
    written = read_json(marker)
    written = written.get("files") if isinstance(written, dict) else None
    require(isinstance(written, list), f"{marker}: not an export marker (no list of files); remove the directory "
                                       f"yourself or name a new one (nothing was written)")
    others = sorted(set(os.listdir(out)) - set(written) - {MARKER})
    require(not others, f"out={out}: an earlier export that now also holds {', '.join(others[:3])}"
                        f"{' ...' if len(others) > 3 else ''}; move those out or name a new directory (nothing was "
                        f"written)")


def export_rung(cfg, plan: Plan) -> Path:
    rung, run, summary, finished = finished_rung(cfg, plan)
    label = str(cfg.budget) if cfg.get("budget") else (finished[-1] if finished else None)
    require(label in finished, f"budget={label}: not a finished budget of {rung.name}; use one of "
                               f"{', '.join(finished) or '(none yet)'}")
    if cfg.out:
        out = Path(cfg.out)
    else:
        out = run.path / "hf" / label
        run.refuse_links()  # written inside the run directory
    check_out(out)  # before any work
    partial = temp_dir_beside(out)  # built beside, then renamed: a half-written export is never taken for a whole one
    try:
        data = TokenData(open_data(OmegaConf.to_container(cfg.data, resolve=True), plan.data_tokens,
                                   may_prepare=not on_cluster()), verify=False)
        require(data.fingerprint == summary.get("data_fingerprint"), f"data: differs from the data {rung.name} was "
                f"trained on; pass the same data.* overrides as its training")
        tokenizer = hf_tokenizer(load_saved(data.manifest["tokenizer"], data.directory))
        model = build_model(rung.spec, seed=rung.seed)
        model.load_state_dict(budget_weights(run, label, summary["budgets"][label]))
        model.config.bos_token_id = model.config.eos_token_id = int(data.manifest["tokenizer"]["eos_id"])
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        atomic_write_json(partial / MARKER, {
            "written_by": f"ladder {__version__} export", "ladder": plan.ladder, "rung": rung.name, "budget": label,
            "rung_identity": summary.get("rung_identity"), "data_fingerprint": data.fingerprint,
            "files": sorted(os.listdir(partial))})
        replace_dir(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # this export's own, unfinished
        raise
    return out


def replace_dir(new: Path, out: Path) -> None:
    """`new` renamed to `out`; an earlier export there (checked again: it may have changed while the model was
    written) moved aside first and removed only once `new` is in its place."""
    if not out.exists():
        new.rename(out)
        return
    check_out(out)
    aside = temp_dir_beside(out)
    try:
        out.rename(aside / out.name)
        try:
            new.rename(out)
        except BaseException:
            (aside / out.name).rename(out)  # the earlier export back where it was
            raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
