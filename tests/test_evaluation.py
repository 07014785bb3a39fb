"""10-crop evaluation views and their averaging."""

import torch

from zfcore.data.sources import ten_crops
from zfcore.evaluation import evaluate, ten_crop_logits
from zfcore.models import zfnet


def test_ten_crops_are_corners_centre_and_mirrors():
    images = torch.randn(2, 3, 64, 64)
    views = ten_crops(images, 4)
    assert views.shape == (2, 10, 3, 64, 64)
    assert torch.equal(views[:, 4], images)  # the centre crop of the padded image is the image
    assert torch.equal(views[:, 9], images.flip(-1))
    assert torch.equal(views[:, 5:], views[:, :5].flip(-1))
    assert torch.equal(views[:, 3, :, :-4, :-4], images[:, :, 4:, 4:])  # bottom-right: 4 px of reflection beyond


def test_ten_crop_logits_average_the_softmax():
    model = zfnet(7, 64, widths=(4, 8, 8, 8, 8), fc=8, init="he").eval()
    views = ten_crops(torch.randn(3, 3, 64, 64), 4)
    with torch.no_grad():
        combined = ten_crop_logits(model, views)
        expected = torch.stack([model(views[:, i]).softmax(-1) for i in range(10)]).mean(0)
    torch.testing.assert_close(combined.exp(), expected, rtol=1e-5, atol=1e-6)


def test_per_image_correctness_is_in_batch_order_and_averages_to_top1():
    model = zfnet(5, 64, widths=(4, 8, 8, 8, 8), fc=8, init="he").eval()
    images = torch.randn(12, 3, 64, 64)
    with torch.no_grad():
        predicted = model(images).argmax(1)
    labels = predicted.clone()
    labels[[1, 4, 9]] = (predicted[[1, 4, 9]] + 1) % 5  # three wrong on purpose
    batches = [(images[:5], labels[:5]), (images[5:], labels[5:])]
    result = evaluate(model, batches, precision="fp32", per_image=True)
    assert result["correct"].tolist() == [index not in (1, 4, 9) for index in range(12)]
    assert result["top1"] == result["correct"].float().mean().item() == 9 / 12
    assert "correct" not in evaluate(model, batches, precision="fp32")
