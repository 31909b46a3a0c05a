"""Fast CPU inference: the model traced once and run by oneDNN Graph, in fp32, bfloat16 or int8.

:func:`fuse_for_inference` returns an inference-only copy of a model. On the CPU its first call
traces it (``torch.jit.trace``) and freezes it (weights become constants, batch-norms fold into
the convolutions), and every call runs the frozen graph with PyTorch's oneDNN Graph fuser
(``torch.jit.enable_onednn_fusion``): convolution + ReLU (+ pooling) execute as fused oneDNN
partitions with their weights in oneDNN's own layout, on channels-last activations, with about a
tenth of eager mode's per-layer overhead. With ``precision="bf16"`` weights and activations are
bfloat16: on CPUs that compute bfloat16 natively (Intel AMX, Xeon Sapphire Rapids and later;
AVX512-BF16, AMD Zen 4 and later: :func:`native_bf16`) that is 2-7 times faster again;
elsewhere oneDNN emulates it, and fp32 is the better choice. With ``precision="int8"`` the copy
is a model quantised beforehand (:mod:`openfer.models.quantize`: int8 convolutions, on any x86
CPU with AVX2, fastest with AMX-INT8 or VNNI). :func:`auto_precision` picks among them
(``Recognizer(precision="auto")``).

The traced graph is checked against the eager model on that first input (and one more face, so
that the batch size differs); a model that cannot be traced, that turns a tensor into a Python
value while traced (data-dependent control flow or shapes, which a trace would freeze), or whose
trace disagrees, runs eagerly instead, with a warning; one that oneDNN Graph refuses runs as
plain TorchScript. On a GPU the copy runs eagerly in the chosen precision. Nothing here changes
the model's training behaviour: the copy is for inference (``torch.no_grad`` or
``torch.inference_mode``). ``torch.jit.trace`` is deprecated in favour of ``torch.compile``, which
needs a C++ compiler at run time and has no oneDNN Graph path yet: openfer pins torch < 2.14.

Measured on this project's 2-core Xeon (AMX), 1 thread, distilled FERNet-M: eager fp32 2.7 ms
per face at batch 1 and 420 faces/s at batch 64; fused bf16 0.4 ms and 6,000 faces/s
(benchmarks/results/README.md, "Fast CPU inference").
"""

from __future__ import annotations

import copy
import os
import threading
import warnings
from typing import Any

import torch
from torch import nn

from ..process_state import catching_warnings
from .quantize import WEIGHT_BITS, weight_bits

#: The input's dtype per precision (int8 models take float input and quantise it themselves).
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.float32}
PRECISIONS = tuple(DTYPES)
TORCH_DIR = os.path.dirname(torch.__file__)
#: Trace vs eager, relative to the output: an int8 graph may round a value differently from the
#: eager int8 model (oneDNN's fused float arithmetic before a quantisation step).
TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2, "int8": 5e-2}
MAX_GRAPHS = 8         # input shapes (batch sizes) that get a graph of their own...
OWN_GRAPH_AFTER = 3    # ...once seen this many times


#: CPU features that compute bfloat16 products natively, best first, as
#: ``torch.cpu.get_capabilities()`` names them, and as :func:`bf16_unit` reports them.
BF16_UNITS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}
#: CPU features with int8 dot products (AMX tiles, VNNI), best first, as :func:`int8_unit` reports
#: them.
INT8_UNITS = {"amx_int8": "AMX-INT8", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI"}


def cpu_capabilities() -> dict:
    """``torch.cpu.get_capabilities()`` (CPU name and instruction-set features), or ``{}`` where
    torch cannot tell (an older torch, an unknown CPU)."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    try:
        return dict(capabilities()) if capabilities else {}
    except Exception:
        return {}


def bf16_unit() -> str | None:
    """The CPU's native bfloat16 unit: ``"AMX-BF16"`` (Intel Xeon Sapphire Rapids and later),
    ``"AVX512-BF16"`` (AMD Zen 4 and later, Intel Cooper Lake), or None (bfloat16 would be
    emulated: AVX2-only and plain AVX-512 CPUs, and a CPU torch cannot read). A unit that
    ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) keeps oneDNN from using does not count:
    there bf16 is emulated too."""
    found = cpu_capabilities()
    return next((name for key, name in BF16_UNITS.items()
                 if found.get(key) and _isa_allows(key)), None)


def int8_unit() -> str | None:
    """The instructions of the int8 kernels oneDNN runs here: ``"AMX-INT8"`` (Intel Xeon
    Sapphire Rapids and later: int8 tile matrix products; oneDNN's ``brg_conv_fwd:..._amx``
    kernels ran the default's convolutions there), ``"AVX512-VNNI"`` (Intel Cascade Lake and
    later, AMD Zen 4 and later) or ``"AVX-VNNI"`` (Intel Alder Lake and later), int8 dot
    products; ``"AVX-512"`` (no VNNI: Intel Skylake-SP) or ``"AVX2"`` (AVX2-only CPUs),
    products summed pairwise in 16 bits (``vpmaddubsw``); None where torch cannot tell or the
    CPU lacks AVX2. ``ONEDNN_MAX_CPU_ISA`` limits it as in :func:`bf16_unit`. Whether those
    kernels keep a model's answers: :func:`int8_keeps_answers`."""
    found = cpu_capabilities()
    dot_products = next((name for key, name in INT8_UNITS.items()
                         if found.get(key) and _isa_allows(key)), None)
    if dot_products:
        return dot_products
    limit = _isa_limit()
    avx512 = found.get("avx512_f") and (limit in ("ALL", "DEFAULT") or limit.startswith("AVX512")
                                         or "AMX" in limit or limit.startswith("AVX10"))
    avx2 = found.get("avx2") and (limit in ("ALL", "DEFAULT") or limit.startswith("AVX2")
                                  or avx512)
    return "AVX-512" if avx512 else "AVX2" if avx2 else None


def int8_keeps_answers(weight_bits: int) -> bool:
    """Whether oneDNN's int8 kernels here keep the answers of a model quantised with
    ``weight_bits``-bit weights (:mod:`openfer.models.quantize`). Measured, the default on all
    of PublicTest, top labels kept against fp32, 8-bit / 7-bit weights (head in int8): VNNI
    99.14 / 99.19 %, AVX2 99.19 / 99.16 %, AVX-512 without VNNI **91.25** / 99.19 % (its 16-bit
    sums saturate with 8-bit weights); 7-bit with the head in fp32, as shipped: 99.25 / 99.11 /
    99.25 %, and AMX-INT8 99.22 %. False where :func:`int8_unit` is None."""
    unit = int8_unit()
    return unit is not None and (unit != "AVX-512" or weight_bits <= 7)


def _isa_limit() -> str:
    """oneDNN's instruction-set limit (``ONEDNN_MAX_CPU_ISA`` or ``DNNL_MAX_CPU_ISA``), upper
    case; ``ALL`` when none is set."""
    return (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
            or "ALL").upper()


def _isa_allows(unit: str) -> bool:
    """Whether oneDNN's instruction-set limit (``ONEDNN_MAX_CPU_ISA``, e.g. ``AVX2`` or
    ``AVX512_CORE``, as used to approximate older CPUs) leaves ``unit`` usable."""
    limit = _isa_limit()
    if limit in ("ALL", "DEFAULT") or "AMX" in limit:
        return True
    if unit.startswith("amx_"):
        return False
    newer_than_bf16 = "BF16" in limit or "FP16" in limit or limit.startswith("AVX10")
    if unit == "avx512_vnni":                  # AVX512_CORE_VNNI and later AVX-512 levels
        return newer_than_bf16 or limit.startswith("AVX512_CORE_VNNI")
    if unit == "avx_vnni":                     # AVX2_VNNI, AVX2_VNNI_2
        return limit.startswith("AVX2_VNNI") or newer_than_bf16
    return unit == "avx512_bf16" and newer_than_bf16


def native_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (:func:`bf16_unit`). Measured, distilled
    FERNet-M, fused bf16 against fused fp32, 1 thread: with AMX-BF16 (Intel Xeon) batch 1 3.4x
    and batch 64 6.7x faster, training 2.5x; with AVX512-BF16 (AMD EPYC) batch 1 1.8x (1.01 ->
    0.55 ms), batch 64 1.9x (977 -> 1,901 faces/s), training 1.75x; where bfloat16 is emulated
    (an AVX2-only EPYC) training was 13x slower."""
    return bf16_unit() is not None


def auto_precision(meta, device: str = "cpu") -> str:
    """What ``precision="auto"`` runs a model in: int8 for a model that records an int8
    calibration and check (``meta.int8``) where oneDNN's int8 kernels keep its answers
    (:func:`int8_keeps_answers`: any x86 CPU with AVX2 for 7-bit weights); else bf16 for a model
    that records a bf16 check (``meta.bf16``) on a CPU that computes bfloat16 natively; else
    fp32 (GPUs included: the copy runs eagerly there).

    int8 comes first on every CPU that has both. Measured, the default, 1 thread, int8 against
    bf16: on an Intel Xeon with AMX (AMX-INT8 against AMX-BF16) batch 1 0.57-0.64 against
    0.60-0.66 ms, batch 8 5,160 against 3,670 faces/s, batch 64 7,240-7,650 against 4,440-4,830,
    batch 256 6,490 against 3,940 (2 threads, batch 64: 11,910 against 7,610); on an AMD EPYC
    with AVX512-VNNI and AVX512-BF16 batch 64 3,700-3,830 against 2,030. (Before int8 existed,
    bf16 was the choice on AMX.)"""
    if device != "cpu":
        return "fp32"
    checked_bf16, checked_int8 = getattr(meta, "bf16", None), getattr(meta, "int8", None)
    if checked_int8 and int8_keeps_answers(weight_bits(checked_int8)):
        return "int8"
    return "bf16" if checked_bf16 and bf16_unit() else "fp32"


_ALLOCATOR_WARMED = False
ALLOCATOR_WARM_BYTES = 24 << 20     # under glibc's 32 MiB cap on its dynamic mmap threshold


def _warm_allocator() -> None:
    """Once per process: allocate and free one 24 MiB block. glibc serves blocks above its mmap
    threshold (128 KiB at start) with fresh ``mmap`` pages, and raises the threshold (and the
    heap-trimming one, to twice it) to the size of the largest such block freed; a process whose
    first batches were small keeps returning and re-faulting a batch-64's buffers on every
    call. Measured, int8 default, 1 thread, batch 64 after a first batch-1 call: 2,740-2,950
    faces/s, 3,720-3,850 after this (3,560-3,770 after a first batch of 256; 3,610-3,680 with
    the ``MALLOC_*`` settings the project trains with). bf16 was not affected. Other allocators
    (not glibc) are unaffected by it; it costs 24 MiB of address space, once."""
    global _ALLOCATOR_WARMED
    if not _ALLOCATOR_WARMED:
        _ALLOCATOR_WARMED = True
        block = torch.empty(ALLOCATOR_WARM_BYTES, dtype=torch.uint8)    # mmap'ed, untouched
        del block                                       # freed: glibc raises its thresholds


def check_precision(precision: str) -> None:
    """Raise :class:`~openfer.errors.OpenferError` unless ``precision`` is ``auto`` or one of
    :data:`PRECISIONS`."""
    from ..errors import OpenferError

    if precision not in ("auto", *PRECISIONS):
        raise OpenferError(f"precision must be 'auto', {', '.join(map(repr, PRECISIONS))}; "
                           f"got {precision!r}")


def for_precision(model: nn.Module, precision: str, device: str = "cpu"
                  ) -> tuple[nn.Module, str]:
    """The model to fuse, and the precision to fuse it in, for ``precision`` on ``device``:
    ``auto`` resolved by :func:`auto_precision` (an int8 calibration counts only for the weights
    it was measured on); for int8 the quantised model (:func:`openfer.models.quantize.quantize`,
    CPU only; a warning where its kernels change answers, :func:`int8_keeps_answers`)."""
    from ..errors import OpenferError
    from .quantize import calibrated_for, quantize

    check_precision(precision)
    if precision == "auto":                 # what is fast here and measured harmless
        meta = model.meta
        if getattr(meta, "int8", None) and not calibrated_for(model):
            meta = meta.replace(int8=None)                 # measured on other weights
        precision = auto_precision(meta, device)
        if precision == "int8":
            try:
                return quantize(model), precision
            except Exception as exc:        # auto never fails where another precision runs
                fallback = auto_precision(meta.replace(int8=None), device)
                warnings.warn(f"{meta.architecture}: int8 unavailable ({type(exc).__name__}: "
                              f"{exc}); running in {fallback} instead", RuntimeWarning,
                              stacklevel=3)
                return model, fallback
    if precision != "int8":
        return model, precision
    if device != "cpu":
        raise OpenferError(f"precision 'int8' runs on the CPU (device='cpu'); on {device} use "
                           "fp32 or bf16")
    bits = weight_bits(model.meta.int8) if getattr(model.meta, "int8", None) else WEIGHT_BITS
    if not int8_keeps_answers(bits):
        warnings.warn(f"precision 'int8' on a CPU whose int8 kernels change answers with "
                      f"{bits}-bit weights (AVX-512 without VNNI: their 16-bit partial sums "
                      "saturate; measured, the default kept 91 % of its top labels; record a "
                      "7-bit calibration with scripts/check_precision.py --precision int8 "
                      "--write) or that torch cannot identify; fp32 is the safe choice here",
                      RuntimeWarning, stacklevel=3)
    return quantize(model), precision


class _onednn_fusion:
    """PyTorch's process-wide oneDNN Graph switch, on (or off) for one call, then as it was.
    A class rather than ``contextlib``: it runs on every batch-1 call.

    Calls from several threads overlap: the switch is saved when the first of them enters and
    put back when the last one leaves (a count under a lock), so the process is left as it was;
    saving and restoring per call let threads restore each other's value and leave it on. While
    calls overlap the last one to enter sets it (the graphs' plans are made in their warm-up
    calls; see :meth:`FusedModel._warm`)."""

    __slots__ = ("enabled",)
    _lock = threading.Lock()
    _active = 0                                  # calls inside, across threads
    _saved = False                               # the switch before the first of them

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self):
        cls = _onednn_fusion
        with cls._lock:
            if cls._active == 0:
                cls._saved = torch.jit.onednn_fusion_enabled()
            cls._active += 1
            torch.jit.enable_onednn_fusion(self.enabled)

    def __exit__(self, *exc) -> None:
        cls = _onednn_fusion
        with cls._lock:
            cls._active -= 1
            if cls._active == 0:
                torch.jit.enable_onednn_fusion(cls._saved)


def _to_float(output):
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, dict):
        return {key: _to_float(value) for key, value in output.items()}
    if isinstance(output, (list, tuple)):
        return type(output)(_to_float(value) for value in output)
    return output


def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for value in output for t in _tensors(value)]
    return []


def _agree(expected, got, tolerance: float) -> bool:
    a, b = _tensors(expected), _tensors(got)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return False
        if x.is_floating_point():
            x, y = x.float(), y.float()
            if (x - y).abs().max() > tolerance * (1 + x.abs().max()):
                return False
        elif not torch.equal(x, y):
            return False
    return True


class FusedModel(nn.Module):
    """The inference copy: casts a float input to its precision (channels-last), runs the traced
    oneDNN graph on the CPU (eagerly elsewhere), returns float32; ``meta`` stays reachable.

    TorchScript optimises a graph for the input shape it first sees; other shapes go through its
    slower fallback path (measured: batch 64 at 3,800 instead of 5,800 faces/s after batch 1 came
    first). So up to :data:`MAX_GRAPHS` recurring input shapes (batch sizes, in practice) get a
    graph of its own, traced on a shape's :data:`OWN_GRAPH_AFTER`-th call; others share the
    first graph."""

    def __init__(self, model: nn.Module, precision: str):
        super().__init__()
        self.model, self.precision, self.dtype = model, precision, DTYPES[precision]
        self.meta = getattr(model, "meta", None)
        self.graph: torch.jit.ScriptModule | None = None    # the first, checked graph
        self.onednn = False                      # the graphs run with oneDNN Graph fusion
        self.eager_reason: str | None = None     # why no graph is used, once known
        self._graphs: dict[tuple, Any] = {}      # input shape -> graph.forward (no Module call)
        self._own_graphs = 0                     # graphs traced for shapes of their own
        self._seen: dict[tuple, int] = {}        # calls per shape without a graph of its own
        self._tracing = threading.Lock()          # one trace per shape, even under concurrency

    def _freeze(self, x: torch.Tensor):
        with catching_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            graph = torch.jit.freeze(torch.jit.trace(self.model, x, check_trace=False))
        return graph, caught

    def _warm(self, graph, x: torch.Tensor, onednn: bool):
        with torch.no_grad(), _onednn_fusion(onednn):
            for _ in range(3):                           # profiling runs, then the final plan
                out = graph(x)
        return out

    def _trace(self, x: torch.Tensor) -> None:
        """Trace and freeze on ``x``; run the graph with oneDNN Graph fusion where it accepts
        every operation, else as plain TorchScript, else (and with a warning) eagerly."""
        _warm_allocator()
        reasons = []
        probe = torch.cat([x, x[:1].flip(-1)])          # another batch size, other content
        try:
            graph, caught = self._freeze(x)
            frozen = [f"{w.filename}:{w.lineno}: {str(w.message).split(' might')[0]}"
                      for w in caught if str(w.message).startswith("Converting a tensor to a")
                      and not w.filename.startswith(TORCH_DIR)]   # torch's own shape checks
            if frozen:                                   # a value the trace would keep forever
                raise RuntimeError(f"{frozen[0]} (data-dependent control flow or shapes)")
            with torch.no_grad():
                expected, expected_probe = self.model(x), self.model(probe)
        except Exception as exc:                         # anything the tracer cannot follow
            reasons.append(f"tracing failed ({type(exc).__name__}: {exc})")
        else:
            for onednn in (True, False):
                try:
                    got = self._warm(graph, x, onednn)
                    with torch.no_grad(), _onednn_fusion(onednn):
                        got_probe = graph(probe)
                except Exception as exc:
                    reasons.append(f"{'oneDNN Graph' if onednn else 'TorchScript'} refused it "
                                   f"({type(exc).__name__}: {str(exc).splitlines()[0]})")
                    continue
                tolerance = TOLERANCE[self.precision]
                if _agree(expected, got, tolerance) and \
                        _agree(expected_probe, got_probe, tolerance):
                    self.graph, self.onednn = graph, onednn
                    self._graphs[tuple(x.shape)] = graph.forward
                    return
                reasons.append("the traced graph disagrees with the model (data-dependent "
                               "control flow?)")
                break
        self.eager_reason = "; ".join(reasons)
        name = getattr(self.meta, "architecture", None) or type(self.model).__name__
        warnings.warn(f"{name}: fast CPU inference unavailable, {self.eager_reason}; running "
                      "the model eagerly", RuntimeWarning, stacklevel=4)

    def _graph_for(self, x: torch.Tensor):
        """The graph for ``x``'s shape: the first, checked graph is made on the first call; a
        shape seen :data:`OWN_GRAPH_AFTER` times gets its own (rare shapes, such as the odd sizes
        of a server's micro-batches, share the first rather than each paying for a trace)."""
        shape = tuple(x.shape)
        with self._tracing:
            if shape in self._graphs or self.eager_reason is not None:
                return self._graphs.get(shape)
            if self.graph is None:
                self._trace(x)
                return self._graphs.get(shape)
            self._seen[shape] = seen = self._seen.get(shape, 0) + 1
            if seen < OWN_GRAPH_AFTER or self._own_graphs >= MAX_GRAPHS:
                return self.graph.forward                 # the shared graph, for now
            try:
                graph, _ = self._freeze(x)
                self._warm(graph, x, self.onednn)
            except Exception:                             # keep the checked graph instead
                self._own_graphs = MAX_GRAPHS
                return self.graph.forward
            self._own_graphs += 1
            self._graphs[shape] = graph.forward
            return graph.forward

    def forward(self, x: torch.Tensor):
        if x.is_floating_point():                       # integer images stay as they are
            x = x.to(self.dtype)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if x.device.type == "cpu" and not torch.is_grad_enabled() and self.eager_reason is None:
            run = self._graphs.get(tuple(x.shape))
            if run is None:
                run = self._graph_for(x)
            if run is not None:
                with _onednn_fusion(self.onednn):
                    return _to_float(run(x))
        return _to_float(self.model(x))


def fuse_members(ensemble: nn.Module, precision: str, device: str = "cpu",
                 wrap=None) -> tuple[list[FusedModel], str]:
    """Each member of an :class:`~openfer.models.ensemble.Ensemble` fused in the precision that
    ``precision`` gives it by :func:`for_precision`, as if it ran alone: ``auto`` reads each
    member's own bf16 / int8 records (an ensemble records no checks of its own), so the shipped
    default runs in int8 beside a member that has only a bf16 check, rather than the whole
    ensemble in fp32. Returns the fused members (each ``wrap(member)`` where ``wrap`` is given)
    and the precisions that ran, joined by ``+`` in member order where they differ
    (``int8+bf16``)."""
    members, chosen = [], []
    for member in ensemble.members:
        reduced, ran = for_precision(member, precision, device)
        members.append(fuse_for_inference(wrap(reduced) if wrap else reduced, ran))
        chosen.append(ran)
    return members, chosen[0] if len(set(chosen)) == 1 else "+".join(chosen)


def fuse_for_inference(model: nn.Module, precision: str = "fp32") -> FusedModel:
    """An inference-only copy of ``model`` in ``precision`` (``fp32`` or ``bf16``; ``int8`` for
    a model already quantised by :func:`openfer.models.quantize.quantize`), traced and run by
    oneDNN Graph on the CPU from its first call. The original model is not changed."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    copy_ = copy.deepcopy(model).eval().to(DTYPES[precision]) \
        .to(memory_format=torch.channels_last)
    for parameter in copy_.parameters():
        parameter.requires_grad_(False)
    return FusedModel(copy_, precision)
