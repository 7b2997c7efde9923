"""`td-detr train` flags for where and how a step runs: the device (CUDA when present), mixed precision, torch.compile,
DataLoader workers, pinned memory and features resident on the device.

They map onto `TrainingArguments` (:func:`device_training_arguments`); bad combinations are one line and exit 2 before
any work (:func:`resolve_device`). Precision changes the numbers a run produces, so ``bf16`` / ``fp16`` are part of
the run fingerprint (``FINGERPRINT_TRAINING_ARGS`` in :mod:`.train`); the other settings change only the speed and
are recorded in ``run.json`` under ``execution`` (:func:`execution_record`), outside the fingerprint, so a run
started on a GPU can be resumed on a CPU. `td-detr evaluate` and `spurious-eval` take ``--device`` alone
(:func:`add_inference_device_argument`).
"""

from __future__ import annotations

from ..devices import DEVICES, pick_device
from ..errors import TDDetrInputError


def add_device_arguments(parser) -> None:
    group = parser.add_argument_group("device and speed")
    group.add_argument("--device", choices=DEVICES, default="auto",
                       help="where to train: auto (default) is CUDA when a GPU is present, else the CPU")
    group.add_argument("--bf16", action="store_true",
                       help="bfloat16 mixed precision (HF Trainer autocast; on the CPU too)")
    group.add_argument("--fp16", action="store_true",
                       help="float16 mixed precision with loss scaling (CUDA only)")
    group.add_argument("--compile", action="store_true",
                       help="torch.compile the encoder-decoder (the first steps pay the compilation; the loss's "
                            "matching runs on the host and stays eager)")
    group.add_argument("--dataloader-workers", type=int, default=0, metavar="N",
                       help="DataLoader worker processes that collate batches (default 0: in the training process); "
                            "batches are pinned in memory when training on CUDA")
    group.add_argument("--features-on-device", action="store_true",
                       help="keep the whole training split's clip features on the device as one tensor (QVHighlights: "
                            "7,218 x 75 x 2,818 fp32, about 6 GB) and synthesize videos there, so a step never waits "
                            "on feature reads and copies; needs --dataloader-workers 0")


def add_inference_device_argument(parser) -> None:
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the model predicts: auto (default) is CUDA when a GPU is present, else the CPU")


def resolve_device(args, cuda_available: bool | None = None) -> str:
    """``"cuda"`` or ``"cpu"`` for ``args.device``, after checking the device flags together (exit 2 on a bad mix)."""
    device = pick_device(args.device, cuda_available)
    if args.bf16 and args.fp16:
        raise TDDetrInputError("--bf16 and --fp16 exclude each other: choose one precision")
    if args.fp16 and device != "cuda":
        raise TDDetrInputError("--fp16 needs a CUDA GPU (float16 autocast with loss scaling); on the CPU use --bf16")
    if args.dataloader_workers < 0:
        raise TDDetrInputError(f"--dataloader-workers must be 0 or more, got {args.dataloader_workers}")
    if args.features_on_device and args.dataloader_workers:
        raise TDDetrInputError(f"--features-on-device collates on the device in the training process: it needs "
                               f"--dataloader-workers 0, got {args.dataloader_workers}")
    return device


def device_training_arguments(args, device: str) -> dict:
    """`TrainingArguments` keywords for the device flags (transformers 5 names)."""
    return dict(
        use_cpu=device == "cpu",
        bf16=bool(args.bf16),
        fp16=bool(args.fp16),
        # --compile is td_detr.devices.compile_model's (the Trainer's torch_compile would wrap the loss, and turn
        # TF32 on process-wide)
        torch_compile=False,
        dataloader_num_workers=args.dataloader_workers,
        # Pinned host memory speeds up host-to-GPU copies; batches built on the device cannot be pinned.
        dataloader_pin_memory=device == "cuda" and not args.features_on_device,
    )


def execution_record(args, device: str) -> dict:
    """How the run was executed (``run.json``'s ``execution`` entry; not part of the fingerprint)."""
    return {"device": device, "compile": bool(args.compile), "dataloader_workers": args.dataloader_workers,
            "features_on_device": bool(args.features_on_device)}


def resident_training_split(split, device):
    """``--features-on-device``: the training split's videos as one tensor on ``device`` and the split re-read
    without its video features (the collator takes them from the store)."""
    from ..data.resident import ResidentVideoFeatures

    store = ResidentVideoFeatures.from_split(split, device)
    join = split.format["format_kwargs"]["transform"]
    return store, split.with_transform(join.without_video())
