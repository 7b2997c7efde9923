import torch

from td_detr.dynamics import TDDetrDynamicTokenizer, TDDetrTextDynamicsInteraction


def test_tokenizer_is_the_papers_definition():
    tokenizer = TDDetrDynamicTokenizer(hidden_size=3)
    with torch.no_grad():
        tokenizer.start_token.copy_(torch.tensor([1.0, 0.0, -1.0]))
    video = torch.tensor([[[2.0, 2.0, 2.0], [3.0, 5.0, 1.0], [0.0, 0.0, 0.0]]])
    expected = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 3.0, -1.0], [-3.0, -5.0, -1.0]]])  # v1−st, v2−v1, v3−v2
    assert torch.equal(tokenizer(video), expected)


def test_tokenizer_start_token_is_shared_across_the_batch_and_has_gradient():
    tokenizer = TDDetrDynamicTokenizer(hidden_size=4)
    with torch.no_grad():
        tokenizer.start_token.normal_()
    video = torch.randn(2, 5, 4)
    tokens = tokenizer(video)
    assert torch.allclose(tokens[:, 0], video[:, 0] - tokenizer.start_token)
    assert torch.allclose(tokens[:, 1:], video[:, 1:] - video[:, :-1])
    tokens.sum().backward()
    assert tokenizer.start_token.grad is not None


def test_fusion_weights_follow_beta():
    torch.manual_seed(0)
    text = torch.randn(2, 4, 8)
    dynamic = torch.randn(2, 5, 8)
    video = torch.randn(2, 5, 8)
    attended = torch.randn(2, 5, 8)
    interaction = TDDetrTextDynamicsInteraction(8, 2, dropout=0.0, beta=0.7, fusion="residual").eval()
    guided = interaction.attention(interaction.projection(dynamic), text, text)
    out = interaction(dynamic, video, attended, text, text, None)
    assert torch.allclose(out, 0.7 * video + 0.3 * guided + attended, atol=1e-6)
    interaction.fusion = "scaled"
    out = interaction(dynamic, video, attended, text, text, None)
    assert torch.allclose(out, 0.7 * (video + attended) + 0.3 * guided, atol=1e-6)
