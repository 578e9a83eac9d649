"""A sentence-transformers model (BERT encoder, mean pooling, unit length) run on ONNX Runtime.

The router embeds every new question before it can choose proposers. With sentence-transformers on
torch, all-MiniLM-L6-v2 takes 15-25 ms per question on a 2-core CPU; the same network exported
to ONNX and run by onnxruntime gives the same vectors (to about 1e-7) in about 0.6x that time (and
far less on a busy machine, where torch's waiting threads spin), so the embedder keeps its id and
routers trained either way stay valid. The export needs torch and transformers once; the file is
kept in the user cache (`$MOA_LAB_CACHE_DIR/embedders/`), written atomically, so later processes
need neither. Without onnxruntime (or when the export fails) the
caller falls back to sentence-transformers.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

Encoder = Callable[[Sequence[str]], np.ndarray]
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_encoder(folder: Path, cache_dir: Path, batch_size: int = 16, *, int8: bool = False) -> Encoder | None:
    """An encoder for the sentence-transformers model in `folder` on onnxruntime, or None when
    onnxruntime or tokenizers is missing or the model cannot be exported. Texts are encoded sorted by
    length in batches of `batch_size` (little padding; on a 2-core CPU batches of 16 were faster than
    64), and the runtime's threads do not spin while idle (spinning threads lose to a busy machine).

    `int8`: the encoder's matrix products quantized to 8-bit integers (per output channel, activations
    quantized per batch): about half the time per question, and other vectors (cosine about 0.99 to
    the full-precision ones), so an embedder of its own id."""
    try:
        import onnxruntime
        from tokenizers import Tokenizer
    except ImportError:
        return None
    path = cache_dir / "embedders" / f"{folder.parent.name}-{(folder / 'model.safetensors').stat().st_size}.onnx"
    try:
        if not path.is_file():
            _export(folder, path)
        if int8:
            path = _quantized(path)
    except Exception as exc:  # noqa: BLE001 - any exporter failure: the caller falls back or says so
        log.warning("could not export %s to ONNX (%s: %s)", folder, type(exc).__name__, exc)
        return None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    max_length = json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
    dim = int(json.loads((folder / "config.json").read_text())["hidden_size"])
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0)

    def encode(texts: Sequence[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), dim), np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            batch = tokenizer.encode_batch([texts[i] for i in rows])
            feed = {
                "input_ids": np.array([e.ids for e in batch], np.int64),
                "attention_mask": np.array([e.attention_mask for e in batch], np.int64),
                "token_type_ids": np.array([e.type_ids for e in batch], np.int64),
            }
            hidden = session.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    return encode


def _quantized(path: Path) -> Path:
    """The int8 model beside the exported one at `path`, quantized once (only MatMul weights, per
    channel: quantizing every operator moved the vectors to cosine 0.95 of the originals)."""
    target = path.with_name(f"{path.stem}-int8.onnx")
    if not target.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _export(folder: Path, path: Path) -> None:
    """Export the encoder in `folder` to `path` (torch's TorchScript exporter, dynamic batch and length)."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weights-loading bar is noise in a CLI run
    log.info("exporting %s to ONNX once, into %s", folder, path.parent)

    class Hidden(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    example = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)(["an example"], return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "hidden")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(Hidden(model), tuple(example[name] for name in _INPUTS), str(tmp), input_names=list(_INPUTS),
                              output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
