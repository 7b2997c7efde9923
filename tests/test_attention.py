import torch
from torch import nn

from td_detr.attention import MultiheadAttention, official_t2v_blocked_pairs


def copy_into_ours(reference: nn.MultiheadAttention, hidden: int, heads: int) -> MultiheadAttention:
    ours = MultiheadAttention(hidden, heads, dropout=0.0)
    ours.load_state_dict(reference.state_dict())
    return ours.eval()


def test_matches_torch_multihead_attention_with_key_padding():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    ours = copy_into_ours(reference, 16, 4)
    q, k, v = torch.randn(3, 5, 16), torch.randn(3, 7, 16), torch.randn(3, 7, 16)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 4:] = True
    expected = reference(q, k, v, key_padding_mask=padding, need_weights=False)[0]
    assert torch.allclose(ours(q, k, v, padding), expected, atol=1e-6)


def test_official_mask_is_read_the_way_torch_reads_a_head_major_repeat():
    """The official layers pass `pairs.repeat(H, 1, 1)` as attn_mask to nn.MultiheadAttention (batch-major reading);
    our [B, H, Lv, Lt] mask must make our attention compute exactly that."""
    torch.manual_seed(1)
    batch, heads, clips, tokens = 3, 4, 6, 5
    reference = nn.MultiheadAttention(16, heads, batch_first=True).eval()
    ours = copy_into_ours(reference, 16, heads)
    video_padding = torch.tensor([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1]], dtype=torch.bool)
    text_padding = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    q, kv = torch.randn(batch, clips, 16), torch.randn(batch, tokens, 16)
    pairs = video_padding[:, :, None] & text_padding[:, None, :]
    expected = reference(q, kv, kv, key_padding_mask=text_padding, attn_mask=pairs.repeat(heads, 1, 1),
                         need_weights=False)[0]
    blocked = official_t2v_blocked_pairs(video_padding, text_padding, heads)
    assert torch.allclose(ours(q, kv, kv, text_padding, blocked), expected, atol=1e-6)
    # ... and the leak is real: sample 0 (no padded clips) is masked by other samples' pairs in some heads
    assert blocked[0].any() and not pairs[0].any()
