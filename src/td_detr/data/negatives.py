"""The negative pair of each training row: which row's query the model pairs with a row's video in its negative pass.

The saliency loss pushes a video's clip scores down under a *wrong* query (the negative-pair and rank-contrastive
terms). The official code takes the next row's query (a roll by one). In a synthesized batch that is often not a
wrong query: the rows of one spurious pair, and every row whose partner is the same "hub" video, hold clips of the
same videos, and several rows carry the same query, so the roll can pair a row with its own query or with a query
whose moment is inside the row's video. Here the negative is chosen per row by construction:

* a query q is *eligible* for row r when q's video is none of the videos r's clips come from (its moment's video and,
  for a synthesized row, its context video). That excludes r's own query, every other query on the same videos and
  every query whose moment clips r holds;
* the rows draw their negatives as a random maximum matching between rows and eligible queries (a linear assignment
  with random costs), so whenever the eligibility allows a derangement each query is the negative of exactly one
  row, as with the roll; rows the matching leaves out draw an eligible query that is already used;
* a row without any eligible query (e.g. a batch of one video) gets -1: no negative pair, the loss skips it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def negative_eligibility(row_videos: np.ndarray, query_videos: np.ndarray) -> np.ndarray:
    """bool [n, n]: ``[r, s]`` is True when row s's query may be row r's negative.

    ``row_videos`` int [n, k]: ids of the videos whose clips row r holds (-1 = unused slot); ``query_videos`` int [n]:
    id of the video row s's query belongs to.
    """
    row_videos = np.asarray(row_videos, dtype=np.int64).reshape(len(query_videos), -1)
    query_videos = np.asarray(query_videos, dtype=np.int64)
    inside = (row_videos[:, :, None] == query_videos[None, None, :]).any(axis=1)
    return ~inside


def choose_negatives(eligible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One negative row per row, int64 [n] (-1 where none is eligible): a random maximum matching of rows to eligible
    rows (module docstring), then a random eligible row for the rows it leaves out."""
    eligible = np.asarray(eligible, dtype=bool)
    n = len(eligible)
    negatives = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return negatives
    # Ineligible pairs cost more than any full set of eligible ones, so the assignment first maximises their number.
    cost = np.where(eligible, rng.random((n, n)), float(n + 1))
    rows, columns = linear_sum_assignment(cost)
    matched = eligible[rows, columns]
    negatives[rows[matched]] = columns[matched]
    for row in np.flatnonzero((negatives < 0) & eligible.any(axis=1)):
        candidates = np.flatnonzero(eligible[row])
        negatives[row] = candidates[rng.integers(len(candidates))]
    return negatives
