"""The video synthesizer of TD-DETR (paper §3.1, S2.1, S3; official code in reference-td-detr-official.md §1).

For a pair of videos (V_i, V_k) it builds two new training videos:

* Ṽ_i: the *moment block* of V_i (its ground-truth clips, from the first to the last one, gaps included) kept intact
  and contiguous, plus a share α of V_i's own context and a share 1−α of V_k's clips (its whole video, moment
  included), every part in temporal order; it keeps V_i's query and its windows move with the block;
* Ṽ_k: the same with the roles swapped (V_k's moment, α of V_k's context, 1−α of V_i).

Everything here works on index arrays: a :class:`BatchComposition` says, for every output clip, which input clip it
copies, so the caller gathers all features with one ``take`` and re-maps labels with one offset per output.

Where the paper and the official code differ, the paper is the default and the official behaviour an option:

=====================  ======================================  ==============================================
setting                paper (default)                         official code
=====================  ======================================  ==============================================
``sampling``           ``"bernoulli"``: every context clip     ``"fixed_count"``: a random ⌊α·n⌋ context clips
                       kept with probability α, every partner  and ⌊(1−α)·n⌋ partner clips, each only when the
                       clip with 1−α                           count is > 2
``similarity``         ``"mean"``: Eq. 1, mean clip-pair       ``"top50"``: mean of the 50 largest clip-pair
                       cosine without the p = q terms          cosines (the official precomputed matrix)
``max_length``         synthesized videos "maintain their      no cap for QVHighlights (72% of its synthetic
                       original length": cut to                videos exceed 75 clips); pass ``None``
                       ``max_video_length`` clips (context
                       only, the moment is never cut)
partner candidates     every other row of the batch            the batch's synthetic entries (~B/2); may pick
                       (another video; self excluded)          itself under random pairing
``keep_originals``     ``False``: a step trains on the 2·B     ``True``: originals stay in the batch beside the
                       synthesized videos of the B pairs       synthetic ones (≈1.5·B rows)
                       (§3.1–3.2)
=====================  ======================================  ==============================================

Both use the official length jitter: each sampled part of n clips is resized by r ∈ (1−j, 1+j]
(r > 1: ⌊n(r−1)⌋ of its clips are duplicated; r ≤ 1: a random ⌊n·r⌋ are kept), and the official part order
``"pair"`` ([V_i part ; V_k part] in both outputs, so the moment sits in the first part of Ṽ_i and in the last
part of Ṽ_k).

Batch size (see :meth:`VideoSynthesizer.compose`): with ``keep_originals`` a random half of the B rows
(``anchor_fraction``) become anchors, each giving Ṽ_i and Ṽ_k, and the other rows stay as they are: 1.5·B samples, one third
original, as an official step (which draws B/2 synthetic and B/2 original entries). Without it every row is an
anchor: 2·B samples, all synthetic (the paper's reading: N pairs, two synthesized videos each).

Similarity: cosines are taken between each clip's *full* feature vector (all feature types concatenated) after
normalising that vector. For rows whose feature types are each L2-normalised (what the loader gives), this is the
mean of the per-type cosines, i.e. the official "dot product / 2" for SlowFast+CLIP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..configuration_td_detr import SIMILARITIES
from ..errors import TDDetrInputError

TOP_K = 50  # official "top50" score
_EPS = 1e-9  # slack for floors of products such as 0.7 * 10


# ----------------------------------------------------------------------------------------------------------------
# Pair scores (Eq. 1)
# ----------------------------------------------------------------------------------------------------------------


def clip_unit_vectors(features: np.ndarray) -> np.ndarray:
    """Each clip's full feature vector divided by its L2 norm (zero vectors, e.g. padding, stay zero); float32."""
    features = np.asarray(features, dtype=np.float32)
    return features * _inverse_norms(features)[..., None]


def _inverse_norms(features: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("...d,...d->...", features, features))
    return np.where(norms > 1e-12, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def video_similarity(
    features, lengths: np.ndarray, rows: np.ndarray | None = None, method: str = "mean"
) -> np.ndarray:
    """Pair scores between videos, float64 numpy [len(rows), B] (all rows when ``rows`` is None).

    ``features`` [B, L, D] (a numpy array, or a torch tensor on any device: the products run where it lies) are clip
    features zero-padded after each video's length; cosines use each clip's full vector (all feature types together).

    ``"mean"`` is Eq. 1, s_jl = 1/(L_j·L_l) · Σ_p Σ_{q≠p} cos(v^j_p, v^l_q). A double sum of dot products is the
    dot product of the sums, so s_jl = (S_j·S_l − Σ_p u^j_p·u^l_p) / (L_j·L_l) with u the clip unit vectors and
    S_j = Σ_p u^j_p: per-video sums plus one B×B Gram matrix per clip position (zero padding drops p beyond either
    length), i.e. one pass over the features, instead of the B×B×L×L clip-pair matrix. ``"top50"`` is the official
    score: the mean of the 50 largest entries of the full clip-pair cosine matrix, p = q and padding included, always
    divided by 50; it does build the B·L × B·L matrix (~16 GFLOP at B=32, L=75, D=2816).
    """
    # The products run in torch: it follows the process's torch thread setting (1 in DataLoader workers), while
    # numpy's multi-threaded BLAS stalls badly when the cores are busy (measured 25 ms to over 1 s for one product).
    if isinstance(features, torch.Tensor):
        tensor = features.float().contiguous()
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(np.asarray(features, dtype=np.float32)))
    B, L, D = tensor.shape
    rows = np.arange(B) if rows is None else np.asarray(rows, dtype=np.int64)
    norms = torch.linalg.vector_norm(tensor, dim=2)
    inverse = torch.where(norms > 1e-12, 1.0 / norms.clamp_min(1e-12), torch.zeros_like(norms))  # [B, L]
    index = torch.from_numpy(rows).to(tensor.device)
    if method == "mean":
        sums = torch.bmm(inverse[:, None, :], tensor)[:, 0].double()  # S_j = Σ_p x^j_p / |x^j_p|
        by_position = tensor.permute(1, 0, 2)  # [L, B, D]
        grams = torch.bmm(by_position, by_position.transpose(1, 2))  # [L, B, B] raw dot products per position
        same_position = torch.einsum("pjl,jp,lp->jl", grams, inverse, inverse).double()
        cross = sums.index_select(0, index) @ sums.T
        lengths = np.maximum(np.asarray(lengths, dtype=np.float64), 1.0)
        scores = (cross - same_position.index_select(0, index)).cpu().numpy()
        return scores / (lengths[rows, None] * lengths[None, :])
    if method == "top50":
        units = tensor * inverse[..., None]
        pairs = units.index_select(0, index).reshape(-1, D) @ units.reshape(-1, D).T  # [P·L, B·L]
        pairs = pairs.reshape(len(rows), L, B, L).permute(0, 2, 1, 3).reshape(len(rows), B, L * L)
        top = pairs.topk(min(TOP_K, L * L), dim=2).values
        return top.sum(dim=2, dtype=torch.float64).cpu().numpy() / TOP_K
    raise TDDetrInputError(f"synthesis_similarity must be one of {SIMILARITIES}, got {method!r}")


def choose_partners(
    scores: np.ndarray | None, valid: np.ndarray, pairing: str, rng: np.random.Generator
) -> np.ndarray:
    """Partner index per anchor, int64 [P]; -1 where an anchor has no valid candidate.

    ``valid`` [P, B] marks allowed partners (the caller excludes the anchor itself and rows of the same video).
    ``"similarity"``: argmax of ``scores`` [P, B] over the valid candidates (first index on ties);
    ``"random"``: uniform over the valid candidates.
    """
    valid = np.asarray(valid, dtype=bool)
    if pairing == "similarity":
        keyed = np.where(valid, scores, -np.inf)
    elif pairing == "random":
        keyed = np.where(valid, rng.random(valid.shape), -1.0)
    else:
        raise TDDetrInputError(f"cannot choose partners with synthesis_pairing={pairing!r}")
    partners = np.argmax(keyed, axis=1)
    return np.where(valid.any(axis=1), partners, -1).astype(np.int64)


def most_similar_by_eq1(
    sums: np.ndarray,
    lengths: np.ndarray,
    same_position_dot: Callable[[int, int], float],
    valid: np.ndarray | None = None,
    shortlist_cap: int = 64,
) -> np.ndarray:
    """Eq. 1 argmax over a whole data set without its N × L·D Gram matrix; int64 [N], -1 where nothing is valid.

    ``sums`` [N, D] are the per-video sums of clip unit vectors, ``same_position_dot(j, l)`` returns
    Σ_p u^j_p·u^l_p. The cheap part M_jl = S_j·S_l/(L_j·L_l) is computed for all pairs; the p = q term moves a score
    by at most 1/max(L_j, L_l), so only candidates whose M lies within twice that bound of the anchor's best lower
    bound can win, and only those get the exact term. The result is the exact argmax unless more than
    ``shortlist_cap`` candidates fall inside the bound (then the ``shortlist_cap`` best by M are scored).
    """
    sums = np.asarray(sums, dtype=np.float64)
    lengths = np.maximum(np.asarray(lengths, dtype=np.float64), 1.0)
    N = len(sums)
    valid = ~np.eye(N, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    cheap = (sums @ sums.T) / (lengths[:, None] * lengths[None, :])
    bound = 1.0 / np.maximum(lengths[:, None], lengths[None, :])
    lower = np.where(valid, cheap - bound, -np.inf).max(axis=1)
    partners = np.full(N, -1, dtype=np.int64)
    for j in np.flatnonzero(valid.any(axis=1)):
        candidates = np.flatnonzero(valid[j] & (cheap[j] + bound[j] >= lower[j]))
        if len(candidates) > shortlist_cap:
            candidates = candidates[np.argsort(-cheap[j, candidates], kind="stable")[:shortlist_cap]]
            candidates.sort()
        exact = [cheap[j, l] - same_position_dot(j, l) / (lengths[j] * lengths[l]) for l in candidates]
        partners[j] = candidates[int(np.argmax(exact))]
    return partners


# ----------------------------------------------------------------------------------------------------------------
# Moment blocks and label re-mapping
# ----------------------------------------------------------------------------------------------------------------


def moment_blocks(
    windows: list[np.ndarray], clip_ids: list[np.ndarray], lengths: np.ndarray, clip_length: float
) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last clip of every row's moment block, int64 [B] each.

    The block spans all clips any window touches (``floor(st / c)`` to ``ceil(ed / c)``; the official code truncates
    the end, which can leave the last partial clip outside the block) and all relevant clip ids, from the smallest to
    the largest (gaps between windows are part of it), clamped to the video: 0 <= start < end <= L.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    B = len(lengths)
    start = np.full(B, np.iinfo(np.int64).max, dtype=np.int64)
    end = np.zeros(B, dtype=np.int64)
    counts = np.array([len(w) for w in windows])
    if counts.sum():
        flat = np.concatenate([np.asarray(w, dtype=np.float64).reshape(-1, 2) for w in windows])
        owner = np.repeat(np.arange(B), counts)
        np.minimum.at(start, owner, np.floor(flat[:, 0] / clip_length + _EPS).astype(np.int64))
        np.maximum.at(end, owner, np.ceil(flat[:, 1] / clip_length - 1e-6).astype(np.int64))
    id_counts = np.array([len(c) for c in clip_ids])
    if id_counts.sum():
        ids = np.concatenate([np.asarray(c, dtype=np.int64).reshape(-1) for c in clip_ids])
        owner = np.repeat(np.arange(B), id_counts)
        np.minimum.at(start, owner, ids)
        np.maximum.at(end, owner, ids + 1)
    start = np.clip(start, 0, np.maximum(lengths - 1, 0))
    end = np.clip(end, start + 1, np.maximum(lengths, 1))
    return start, end


def remap_moment(windows: np.ndarray, clip_ids: np.ndarray, offset: int, clip_length: float):
    """Windows (seconds) and clip ids of a moment whose block moved by ``offset`` clips (saliency scores stay)."""
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 2) + offset * clip_length
    return windows, np.asarray(clip_ids, dtype=np.int64).reshape(-1) + offset


# ----------------------------------------------------------------------------------------------------------------
# Composition of a batch
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class BatchComposition:
    """What every output sample is made of.

    Attributes:
        source_index: int64 [n_out, max_len], index of the copied clip in the inputs flattened to [B·L, D]; the value
            ``B·L`` marks padding (the caller appends a zero row there).
        lengths: int64 [n_out] clips per output.
        moment_row: int64 [n_out] input row whose query, moment and labels the output carries.
        context_row: int64 [n_out] partner row of a synthesized output, -1 for an original.
        offset: int64 [n_out] clips by which the moment block moved (new index − old index; 0 for originals).
    """

    source_index: np.ndarray
    lengths: np.ndarray
    moment_row: np.ndarray
    context_row: np.ndarray
    offset: np.ndarray

    @property
    def synthetic(self) -> np.ndarray:
        return self.context_row >= 0


def _random_ranks(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order of the True entries of each row: ranks 0..n-1 on them, larger ranks elsewhere."""
    keys = rng.random(mask.shape)
    keys[~mask] = 2.0
    return np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")


def _realise_counts(keep: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copies per position so that each row has ``target`` copies of its kept clips: a random subset when the
    target is smaller, every kept clip once plus ``target - n`` random ones twice when larger (target <= 2n)."""
    n = keep.sum(axis=1)
    ranks = _random_ranks(keep, rng)
    once = ranks < np.minimum(target, n)[:, None]
    twice = ranks < (target - n)[:, None]
    return once.astype(np.int64) + twice.astype(np.int64)


@dataclass
class VideoSynthesizer:
    """Builds the synthetic part of a training batch (module docstring: paper vs official settings). Build it with
    :meth:`from_config`: the settings are :class:`~td_detr.TDDetrConfig` fields, validated there.

    Args:
        pairing: ``"similarity"`` (Eq. 1 argmax in the batch), ``"random"`` or ``"none"`` (no synthesis).
        alpha: α, share of the moment video's own context kept; 1−α of the partner's clips are brought in.
        length_jitter: j, each sampled part is resized by r ∈ (1−j, 1+j]; 0 <= j <= 1.
        sampling: ``"bernoulli"`` (paper) or ``"fixed_count"`` (official).
        similarity: ``"mean"`` (paper Eq. 1) or ``"top50"`` (official).
        max_length: cap on synthesized lengths in clips (paper; ``None`` = official, no cap). Only context clips
            are dropped to meet it, proportionally from the two parts.
        keep_originals: keep the non-anchor rows as they are (official) and make ``anchor_fraction`` of the rows
            anchors; ``False`` (paper) makes every row an anchor.
        anchor_fraction: share of rows used as anchors when ``keep_originals`` (official ≈ 0.5).
        part_order: ``"pair"`` (official: [V_i part ; V_k part] in both outputs), ``"moment_first"`` (the moment's own
            video always first) or ``"random"`` (either way, per output).
    """

    pairing: str
    alpha: float
    length_jitter: float
    sampling: str
    similarity: str
    max_length: int | None
    keep_originals: bool
    anchor_fraction: float
    part_order: str

    @classmethod
    def from_config(cls, config) -> "VideoSynthesizer":
        """The synthesizer of a :class:`~td_detr.TDDetrConfig` (which validated every setting): its ``synthesis_*``
        fields, and ``max_video_length`` as the cap when ``synthesis_cap_length``."""
        return cls(
            pairing=config.synthesis_pairing,
            alpha=float(config.synthesis_alpha),
            length_jitter=float(config.synthesis_length_jitter),
            sampling=config.synthesis_sampling,
            similarity=config.synthesis_similarity,
            max_length=config.max_video_length if config.synthesis_cap_length else None,
            keep_originals=bool(config.synthesis_keep_originals),
            anchor_fraction=float(config.synthesis_anchor_fraction),
            part_order=config.synthesis_part_order,
        )

    # -- steps ------------------------------------------------------------------------------------------------------

    def anchor_count(self, eligible_rows: int) -> int:
        """How many of the eligible rows become anchors: all, or ``anchor_fraction`` of them with originals kept."""
        if not self.keep_originals:
            return eligible_rows
        return int(np.clip(np.floor(eligible_rows * self.anchor_fraction + 0.5), min(1, eligible_rows), eligible_rows))

    def rows_per_batch(self, batch_size: int) -> int:
        """Rows a training step sees for a batch of ``batch_size`` when every row can be paired (each paired anchor
        turns into two synthesized rows): B without synthesis, 2·B (paper), ≈1.5·B with originals kept."""
        if self.pairing == "none" or batch_size < 2:
            return batch_size
        return batch_size + self.anchor_count(batch_size)

    def choose_anchors(self, eligible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rows that get a partner: all eligible rows, or a random ``anchor_fraction`` of them with originals kept."""
        rows = np.flatnonzero(eligible)
        if not self.keep_originals:
            return rows
        return np.sort(rng.choice(rows, size=self.anchor_count(len(rows)), replace=False))

    def sample_parts(self, own_context, other_valid, block_size, rng):
        """Copies per position of the own context and of the partner video, int64 [n, L] each (before the moment
        block is added): sampling, then the length jitter of each part, then the length cap."""
        alpha = self.alpha
        if self.sampling == "bernoulli":
            keep_own = own_context & (rng.random(own_context.shape) < alpha)
            keep_other = other_valid & (rng.random(other_valid.shape) < 1.0 - alpha)
        else:  # official: a fixed number of clips, none when that number is <= 2
            want_own = np.floor(alpha * own_context.sum(axis=1) + _EPS).astype(np.int64)
            want_other = np.floor((1.0 - alpha) * other_valid.sum(axis=1) + _EPS).astype(np.int64)
            keep_own = _random_ranks(own_context, rng) < np.where(want_own > 2, want_own, 0)[:, None]
            keep_other = _random_ranks(other_valid, rng) < np.where(want_other > 2, want_other, 0)[:, None]

        targets = []
        for keep in (keep_own, keep_other):
            n = keep.sum(axis=1)
            r = (1.0 + self.length_jitter) - 2.0 * self.length_jitter * rng.random(len(n))  # r ∈ (1−j, 1+j]
            grown = n + np.floor(n * (r - 1.0) + _EPS).astype(np.int64)
            shrunk = np.floor(n * r + _EPS).astype(np.int64)
            targets.append(np.where(r > 1.0, grown, np.minimum(shrunk, n)))
        target_own, target_other = targets

        if self.max_length is not None:
            budget = np.maximum(self.max_length - block_size, 0)
            over = block_size + target_own + target_other > self.max_length
            share = np.floor(budget * target_own / np.maximum(target_own + target_other, 1)).astype(np.int64)
            target_own = np.where(over, share, target_own)
            target_other = np.where(over, budget - share, target_other)
        return _realise_counts(keep_own, target_own, rng), _realise_counts(keep_other, target_other, rng)

    def compose(
        self,
        lengths: np.ndarray,
        block_start: np.ndarray,
        block_end: np.ndarray,
        vids: list[str],
        rng: np.random.Generator,
        features=None,
        eligible: np.ndarray | None = None,
        padded_length: int | None = None,
    ) -> BatchComposition:
        """Plan a training batch from B padded input rows of length ``lengths`` (padded to L clips).

        ``features`` [B, L, D] (zero-padded clip features, numpy or a torch tensor on any device) are needed for
        similarity pairing; ``padded_length``
        (default: L of ``features``, else the longest row) is the row stride of ``source_index``. ``eligible``
        marks rows that may be anchors or partners (rows with a moment inside their video; default all). Partners
        are drawn from all eligible rows except the anchor and rows of the same video (the official code's "> 0.9
        similarity" filter aims at the latter); an anchor without any candidate stays an original.

        Output order: originals (rows that are not paired anchors, in row order; none of the anchors'), then Ṽ_i for
        every paired anchor, then Ṽ_k for every paired anchor. The negative pair of each output is chosen by the
        collator from this composition (:mod:`.negatives`), not from the order.
        """
        lengths = np.asarray(lengths, dtype=np.int64)
        B = len(lengths)
        L = int(padded_length or (features.shape[1] if features is not None else lengths.max()))
        eligible = np.ones(B, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
        anchors = np.zeros(0, dtype=np.int64)
        partners = anchors
        if self.pairing != "none" and eligible.sum() >= 2:
            anchors = self.choose_anchors(eligible, rng)
            vid_array = np.asarray(vids, dtype=object)
            valid = eligible[None, :] & (vid_array[anchors][:, None] != vid_array[None, :])
            valid[np.arange(len(anchors)), anchors] = False
            scores = None
            if self.pairing == "similarity":
                if features is None:
                    raise TDDetrInputError("similarity pairing needs the clip features")
                scores = video_similarity(features, lengths, anchors, self.similarity)
            partners = choose_partners(scores, valid, self.pairing, rng)
            anchors, partners = anchors[partners >= 0], partners[partners >= 0]

        # Rows that are not paired anchors stay as they are: with keep_originals these are the non-anchors, without it
        # only rows that could not be paired (or have no moment inside their video).
        originals = np.setdiff1d(np.arange(B), anchors)
        position = np.arange(L)

        # Synthetic outputs: direction 0 = (moment of the anchor, context from the partner), direction 1 = reverse.
        own = np.concatenate([anchors, partners])
        other = np.concatenate([partners, anchors])
        n = len(own)
        if self.part_order == "pair":
            own_first = np.arange(n) < len(anchors)
        elif self.part_order == "moment_first":
            own_first = np.ones(n, dtype=bool)
        else:
            own_first = rng.random(n) < 0.5
        gs, ge = block_start[own], block_end[own]
        in_block = (position >= gs[:, None]) & (position < ge[:, None])
        own_context = (position < lengths[own][:, None]) & ~in_block
        other_valid = position < lengths[other][:, None]
        own_counts, other_counts = self.sample_parts(own_context, other_valid, ge - gs, rng)
        own_counts = own_counts + in_block  # the moment block: every clip exactly once

        first_counts = np.where(own_first[:, None], own_counts, other_counts)
        second_counts = np.where(own_first[:, None], other_counts, own_counts)
        own_source = own[:, None] * L + position
        other_source = other[:, None] * L + position
        first_source = np.where(own_first[:, None], own_source, other_source)
        second_source = np.where(own_first[:, None], other_source, own_source)
        counts = np.concatenate([first_counts, second_counts], axis=1)
        syn_lengths = counts.sum(axis=1)
        before_block = (own_counts * (position < gs[:, None])).sum(axis=1)
        new_start = np.where(own_first, 0, other_counts.sum(axis=1)) + before_block

        # Originals are outputs whose "counts" are 1 on their own clips.
        orig_lengths = lengths[originals]
        out_lengths = np.concatenate([orig_lengths, syn_lengths])
        n_out = len(out_lengths)
        max_len = int(out_lengths.max()) if n_out else 0
        source_index = np.full((n_out, max_len), B * L, dtype=np.int64)
        if len(originals):
            orig_positions = np.arange(max_len)
            orig_mask = orig_positions < orig_lengths[:, None]
            source_index[: len(originals)][orig_mask] = (originals[:, None] * L + orig_positions)[orig_mask]
        if n:
            sequence = np.repeat(np.concatenate([first_source, second_source], axis=1).ravel(), counts.ravel())
            out_row = np.repeat(np.arange(n), syn_lengths) + len(originals)
            starts = np.cumsum(syn_lengths) - syn_lengths
            out_pos = np.arange(len(sequence)) - np.repeat(starts, syn_lengths)
            source_index[out_row, out_pos] = sequence

        return BatchComposition(
            source_index=source_index,
            lengths=out_lengths.astype(np.int64),
            moment_row=np.concatenate([originals, own]).astype(np.int64),
            context_row=np.concatenate([np.full(len(originals), -1), other]).astype(np.int64),
            offset=np.concatenate([np.zeros(len(originals), dtype=np.int64), new_start - gs]).astype(np.int64),
        )
