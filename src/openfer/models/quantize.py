"""int8 CPU inference: post-training static quantisation with its scales kept in the weights.

Post-training static quantisation (Jacob et al., "Quantization and Training of Neural Networks
for Efficient Integer-Arithmetic-Only Inference", CVPR 2018), through PyTorch's FX graph mode:
convolutions (with their batch-norm and ReLU folded in) and linear layers (the classifier head
aside, below) compute in int8 with weights quantised per output channel (symmetric) and
activations per tensor (uint8, affine).

:func:`calibrate` measures the activations' scales once, on training faces (a histogram per
activation, minimising the quantisation error: ``HistogramObserver``), and returns them as a
small JSON-able record; ``scripts/check_precision.py --precision int8 --write`` stores it, with
its accuracy check, in the weights' metadata (``meta.int8``). :func:`quantize` rebuilds the int8
model from the float weights and that record on any machine, without data.

The input is quantised on the pixel grid rather than calibrated: a network input is
``(pixel / 255 - mean) / std``, so with the scale ``1 / (255 std)`` and the zero point
``round(255 mean)`` every 8-bit pixel is one int8 level exactly. A calibrated input range
collapses about 40 of the 256 grey levels into their neighbours (measured, distilled FERNet-M in
fp32 on those inputs: top label changed on 0.59 % of PublicTest faces). Where ``255 mean`` is
not a whole number (0.5: 127.5) the network sees the face shifted by the remainder, half a grey
level (top label changed on 0.11 %); this departs from exact float inference and is what the
recorded check measures. Models with different per-channel means or deviations get a
calibrated input scale instead.

Weights are quantised to 7 bits (:data:`WEIGHT_BITS`), the remedy oneDNN's
guide ("Nuances of int8 computations") describes for CPUs without int8 dot products: there the
products of a uint8 activation and an int8 weight are summed pairwise in 16 bits
(``vpmaddubsw``), and with 8-bit weights two of them (``2 x 255 x 128``) overflow 32,767. The
7-bit range ``[-64, 63]`` gives each output channel the scale ``max |w| / 63.5``, so its largest
weight rounds to 64 in magnitude at most: ``2 x 255 x 64 = 32,640`` cannot overflow.
Measured, distilled FERNet-M, all 3,589 PublicTest faces, top labels kept against fp32, 8-bit /
7-bit weights (head quantised as well): with oneDNN limited to AVX-512 without VNNI (Intel
Skylake-SP) 91.25 % / 99.19 %; limited to AVX2 99.19 % / 99.16 %; with AVX512-VNNI 99.14 % /
99.19 % (7-bit with the head in fp32: 99.25 %, 99.11 %, 99.25 %). One scheme then runs on
every x86 CPU with AVX2. A record made before this (no ``weight_bits``) holds 8-bit weights and
is rebuilt that way.

The classifier head (:func:`output_layers`: the linear layers whose outputs are the model's)
computes in fp32 on the dequantised int8 features (``float_layers`` in the record). Quantised, its
logits came out on the calibrated output grid (the default's: -2.94 to 6.43 in steps of 0.037),
and two classes whose logits lie within a step of each other (36 % of PublicTest faces have such
a pair) often got exactly the same score: 21 % of PublicTest faces had tied class scores. In
fp32: no ties, 99.25 % of the top labels kept (99.19 % quantised), at the same speed (one small
matrix product).

Speed comes from the CPU's int8 dot-product instructions (VNNI: AVX512-VNNI, Intel Cascade
Lake and later, AMD Zen 4 and later; AVX-VNNI, Intel Alder Lake and later): measured on an AMD
EPYC with AVX512-VNNI, 1 thread, distilled FERNet-M through the fused graph, 0.35 ms per face at
batch 1 and 3,500-3,750 faces/s at batch 64, against 0.52 ms and 1,977-2,044 in bf16 in the same
hours (benchmarks/results/README.md). Without VNNI, int8 still runs twice as fast as fp32 on the
same kernels (oneDNN limited to AVX2: 1.0 against 1.9-2.3 ms, 1,100 against 540 faces/s;
limited to AVX-512 without VNNI: 0.57 against 1.1-1.2 ms, 1,970 against 940 faces/s).
``torch.ao.quantization``'s FX mode is what torch < 2.14 (openfer's pin) runs without a
compiler; its successor (PT2E) needs ``torch.compile``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import warnings
from typing import Any, Iterable

import torch
from torch import nn

from ..errors import OpenferError
from ..process_state import catching_warnings

INPUT = "input"          # the record's key for the input's quantisation
WEIGHT_BITS = 7          # |weights| <= 64: no 16-bit overflow without VNNI (module doc)


def weight_bits(record: dict[str, Any]) -> int:
    """The weights' bits of an int8 ``record``: 8 for one made before ``weight_bits`` was kept."""
    return int(record.get("weight_bits", 8))


def float_layers(record: dict[str, Any]) -> list[str]:
    """The layers an int8 ``record`` keeps in fp32 (its ``float_layers``; none in a record made
    before the classifier head was kept in fp32)."""
    return list(record.get("float_layers") or [])


def output_layers(model: nn.Module) -> list[str]:
    """The linear layers whose outputs are the model's outputs (its classifier head): int8 would
    round the logits to a coarse grid (see the module doc), so :func:`calibrate` keeps them in
    fp32."""
    import torch.fx

    with catching_warnings():
        warnings.simplefilter("ignore")
        graph = torch.fx.symbolic_trace(copy.deepcopy(model).eval()).graph
    modules = dict(model.named_modules())
    output = next(n for n in graph.nodes if n.op == "output")
    found: list[str] = []
    torch.fx.node.map_arg(output.args, lambda n: found.append(n.target) if n.op == "call_module"
                          and isinstance(modules.get(n.target), nn.Linear) else None)
    return found


def _qconfig(activation_observer, bits: int, fp32_layers: Iterable[str] = ()):
    from torch.ao.quantization import QConfig, QConfigMapping
    from torch.ao.quantization.observer import PerChannelMinMaxObserver

    weight = PerChannelMinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
        quant_min=-(1 << (bits - 1)), quant_max=(1 << (bits - 1)) - 1)
    mapping = QConfigMapping().set_global(QConfig(activation=activation_observer, weight=weight))
    for name in fp32_layers:
        mapping.set_module_name(name, None)
    return mapping


def _prepare(model: nn.Module, activation_observer, bits: int,
             fp32_layers: Iterable[str] = ()) -> tuple[Any, str]:
    """The model with observers inserted (FX), ``fp32_layers`` left in fp32, and the name of the
    input's observer."""
    from torch.ao.quantization.quantize_fx import prepare_fx

    meta = model.meta
    example = torch.zeros(2, meta.channels, *meta.input_size)
    with catching_warnings(), _no_stack_traces():
        warnings.simplefilter("ignore")     # FX mode's deprecation notices (torch pinned < 2.14)
        prepared = prepare_fx(copy.deepcopy(model).eval(),
                              _qconfig(activation_observer, bits, fp32_layers),
                              example_inputs=(example,))
    placeholder = next(n for n in prepared.graph.nodes if n.op == "placeholder")
    observer = next((n.target for n in placeholder.users if n.op == "call_module"
                     and "activation_post_process" in str(n.target)), None)
    if observer is None:
        raise OpenferError(f"{meta.architecture}: int8 quantisation found no quantised "
                           "operation on the model's input; run it in fp32 or bf16")
    return prepared, observer


@contextlib.contextmanager
def _no_stack_traces():
    """FX's quantisation tracer records the Python stack of every node it creates (for error
    messages), reading and tokenising source files: most of :func:`quantize`'s time at start-up
    (measured, ``Recognizer("default")`` in int8, first in a process: 1.32 s with, 0.24 s
    without). Off while preparing."""
    import torch.fx.config

    previous = torch.fx.config.do_not_emit_stack_traces
    torch.fx.config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        torch.fx.config.do_not_emit_stack_traces = previous


def _observers(prepared) -> dict[str, list[str]]:
    """Each activation observer's name, with the names that share it (FX gives max-pooling,
    flattening and the like the observer of their input): ``{name: [name, *aliases]}``."""
    groups: dict[int, list[str]] = {}
    for name, module in prepared.named_modules(remove_duplicate=False):
        if name.startswith("activation_post_process"):
            groups.setdefault(id(module), []).append(name)
    return {names[0]: names for names in groups.values()}


def pixel_grid(meta) -> tuple[float, int, float] | None:
    """``(scale, zero_point, shift)`` that quantise the input on the 8-bit pixel grid, with the
    input shift (in network units) that the rounding of the zero point leaves; None where the
    channels are normalised differently (one scale cannot hold them all)."""
    if len(set(meta.mean)) != 1 or len(set(meta.std)) != 1:
        return None
    mean, std = meta.mean[0], meta.std[0]
    scale = 1.0 / (255.0 * std)
    zero_point = min(255, max(0, round(255.0 * mean)))
    return scale, zero_point, (zero_point - 255.0 * mean) * scale


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the model's state (names, dtypes, shapes, bytes): a calibration holds for the
    weights it was measured on, not for a fine-tuned copy that inherited the metadata."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def calibrated_for(model: nn.Module, record: dict[str, Any] | None = None) -> bool:
    """Whether the int8 ``record`` (default: ``model.meta.int8``) was measured on these weights."""
    record = record if record is not None else getattr(model.meta, "int8", None)
    return bool(record) and record.get("weights") == weights_fingerprint(model)


def calibrate(model: nn.Module, inputs: Iterable[torch.Tensor], *,
              weight_bits: int = WEIGHT_BITS, float_head: bool = True) -> dict[str, Any]:
    """The int8 record of ``model`` (which carries ``meta``): the scale and zero point of every
    quantised activation, from normalised float ``inputs`` (batches of training faces, as
    :func:`openfer.data.transforms.to_model_input` makes them), and the weights' bits (7, or 8:
    a model that keeps more of its answers with 8 runs in int8 on CPUs with VNNI or AVX2 alone,
    not on AVX-512 ones without VNNI). ``float_head``: keep the classifier head in fp32
    (:func:`output_layers`)."""
    if weight_bits not in (7, 8):
        raise OpenferError(f"weight_bits must be 7 or 8; got {weight_bits!r}")
    from torch.ao.quantization.observer import HistogramObserver

    kept = output_layers(model) if float_head else []
    prepared, input_name = _prepare(model, HistogramObserver.with_args(reduce_range=False),
                                    weight_bits, kept)
    seen = 0
    with torch.no_grad():
        for batch in inputs:
            prepared(batch.float())
            seen += len(batch)
    if not seen:
        raise OpenferError("int8 calibration needs faces; got none")
    activations = {}
    for name in _observers(prepared):
        scale, zero_point = getattr(prepared, name).calculate_qparams()
        activations[name] = [float(scale), int(zero_point)]
    grid = pixel_grid(model.meta)
    if grid is not None:
        activations[input_name] = [grid[0], grid[1]]
    scheme = f"FX static: weights int{weight_bits} per channel (symmetric), activations uint8 " \
        "per tensor (histogram)" + ("; input on the pixel grid" if grid else "") + \
        (f"; {', '.join(kept)} in fp32" if kept else "")
    return {"scheme": scheme, "torch": torch.__version__.split("+")[0],
            "weights": weights_fingerprint(model), "weight_bits": weight_bits,
            "float_layers": kept, "faces": seen, INPUT: input_name, "activations": activations}


class QuantizedModel(nn.Module):
    """The int8 model: a float input (normalised as ``meta`` says) -> float logits. Its input is
    moved by the pixel grid's shift before the graph quantises it (see the module doc)."""

    def __init__(self, graph: nn.Module, meta, shift: float):
        super().__init__()
        self.graph, self.meta, self.shift = graph, meta, float(shift)

    def forward(self, x: torch.Tensor):
        return self.graph(x - self.shift if self.shift else x)


def quantize(model: nn.Module, record: dict[str, Any] | None = None) -> QuantizedModel:
    """The int8 copy of ``model`` from its int8 ``record`` (default: ``model.meta.int8``), its
    weights quantised to the record's bits (:func:`weight_bits`). The float model is not
    changed. Raises :class:`OpenferError` when there is no record or it does
    not fit the model (other weights, or another torch's graph)."""
    from torch.ao.quantization.observer import FixedQParamsObserver, MinMaxObserver
    from torch.ao.quantization.quantize_fx import convert_fx

    meta = model.meta
    record = record if record is not None else getattr(meta, "int8", None)
    if not record:
        raise OpenferError(f"{meta.architecture}: its weights carry no int8 calibration "
                           "(meta.int8); measure and record one with scripts/check_precision.py "
                           "--precision int8 --write, or run it in fp32 or bf16")
    if not calibrated_for(model, record):
        raise OpenferError(f"{meta.architecture}: the int8 calibration in its metadata was "
                           "measured for other weights (a fine-tuned copy?); record one for "
                           "these with scripts/check_precision.py --precision int8 --write")
    prepared, input_name = _prepare(model, MinMaxObserver.with_args(reduce_range=False),
                                    weight_bits(record), float_layers(record))
    activations = record.get("activations") or {}
    observers = _observers(prepared)
    if set(observers) != set(activations) or record.get(INPUT) != input_name:
        raise OpenferError(f"{meta.architecture}: the int8 record in its metadata does not fit "
                           f"the model ({len(activations)} activations recorded, "
                           f"{len(observers)} in the model); record it again with "
                           "scripts/check_precision.py --precision int8 --write")
    for name, (scale, zero_point) in activations.items():
        fixed = FixedQParamsObserver(float(scale), int(zero_point))
        for alias in observers[name]:                   # shared observers stay shared
            setattr(prepared, alias, fixed)
    grid = pixel_grid(meta)
    shift = grid[2] if grid is not None and activations[input_name] == [grid[0], grid[1]] \
        else 0.0
    with catching_warnings(), _onednn_engine():
        warnings.simplefilter("ignore")
        graph = convert_fx(prepared)
    return QuantizedModel(graph, meta, shift)


@contextlib.contextmanager
def _onednn_engine():
    """Pack the int8 weights for oneDNN (where this torch has it): its kernels are the ones the
    instruction-set checks of :func:`openfer.models.fusion.int8_unit` were measured on (the
    default ``x86`` engine may hand a layer to FBGEMM, which ignores ``ONEDNN_MAX_CPU_ISA``).
    The engine is process-wide: it is restored at once; packed weights keep their kernels."""
    previous = torch.backends.quantized.engine
    if "onednn" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "onednn"
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous
