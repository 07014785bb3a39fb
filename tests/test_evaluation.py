"""10-crop evaluation views and their averaging."""

import torch

from zfcore.data.sources import ten_crops
from zfcore.evaluation import ten_crop_logits
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
