"""The paper's network (CNN-F) and VGG-16, as engine Sequentials with PyTorch layouts."""
from ..engine import nn
from ..kernels import conv2d_output_size, maxpool_output_size


def _scaled(channels, width):
    return max(1, int(round(channels * width)))


def cnn_f(num_classes=1000, width=1.0, input_size=224):
    """CNN-F of Chatfield et al. 2014, the pattern of the paper's net:
    conv64-conv256-conv256-conv256-conv256-full4096-full4096-full<num_classes>.

    conv1 11x11 stride 4, LRN, 3x3 stride 2 max-pool; conv2 5x5 pad 2, LRN, max-pool;
    conv3-5 3x3 pad 1; max-pool; two fully connected layers with dropout. The pools round
    up (ceil_mode), as MatConvNet's bottom/right pool padding does in the published model,
    so that a 224x224 input ends in a 6x6x256 map (9,216 inputs to full6).
    `width` scales every layer's channels and hidden units.
    """
    c1, c = _scaled(64, width), _scaled(256, width)
    hidden = _scaled(4096, width)
    size = conv2d_output_size(input_size, 11, 4, 0)
    if size < 3:
        raise ValueError(f"cnn_f needs an input of at least 19 pixels, got {input_size}")
    size = maxpool_output_size(size, 3, 2, 0, True)  # pool1; conv2 keeps the size
    size = maxpool_output_size(size, 3, 2, 0, True)  # pool2; conv3-5 keep the size
    if size < 3:
        raise ValueError(f"cnn_f input {input_size} is too small for the third max-pool")
    size = maxpool_output_size(size, 3, 2, 0, True)  # pool5
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)  # Krizhevsky et al.'s constants
    return nn.Sequential(
        nn.Conv2d(3, c1, 11, stride=4), nn.ReLU(), nn.LocalResponseNorm(**lrn),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(c1, c, 5, padding=2), nn.ReLU(), nn.LocalResponseNorm(**lrn),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(c * size * size, hidden), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )


def shapes_net(num_classes=10, input_size=96, dropout=0.5, batchnorm=False):
    """The network shipped in models/: the paper's pattern (5 conv layers with max-pool after
    conv1, conv2 and conv5, then 3 fully connected layers with dropout) scaled to 96x96
    inputs: conv1 7x7 stride 2 instead of 11x11 stride 4 (a stride-4 first layer leaves a 2x2
    map at this size), 16-32-32-32-32 channels and 256 hidden units (a training budget on
    two CPU cores). No LRN: with the paper's constants (k = 2, alpha = 1e-4) it is a fixed
    factor 2^-0.75 on these activations, and in the 30-minute budget the net without it
    reached 79% against 64% with it (bench/results/h100-2026-11-26/).

    With `batchnorm`, the twin that is trained: a BatchNorm2d after every convolution (which
    then has no bias of its own). `nn.fold_batchnorm` turns it back into the plain pattern
    above, layer for layer, which is what is shipped."""
    size = conv2d_output_size(input_size, 7, 2, 0)
    for _ in range(3):
        size = maxpool_output_size(size, 3, 2, 0, True)

    def convolution(in_channels, out_channels, kernel_size, **geometry):
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=not batchnorm, **geometry)
        return [conv, nn.BatchNorm2d(out_channels), nn.ReLU()] if batchnorm else [conv, nn.ReLU()]

    return nn.Sequential(
        *convolution(3, 16, 7, stride=2), nn.MaxPool2d(3, 2, ceil_mode=True),
        *convolution(16, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True),
        *convolution(32, 32, 3, padding=1),
        *convolution(32, 32, 3, padding=1),
        *convolution(32, 32, 3, padding=1),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(32 * size * size, 256), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(256, num_classes),
    )


VGG16_CONFIGURATION = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                       512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(num_classes=1000):
    """VGG-16 in torchvision's layer order (features, adaptive average pool to 7x7, flatten,
    classifier), so that the parameters of a torchvision state dict map onto ours one to
    one, in order."""
    layers, channels = [], 3
    for item in VGG16_CONFIGURATION:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
            channels = item
    layers += [nn.AdaptiveAvgPool2d(7), nn.Flatten(),
               nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
               nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
               nn.Linear(4096, num_classes)]
    return nn.Sequential(*layers)


def alexnet(num_classes=1000):
    """AlexNet as torchvision builds it (one tower, 64-192-384-256-256 channels, no LRN),
    in its layer order: features, adaptive average pool to 6x6, flatten, classifier."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d(6), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Linear(4096, num_classes),
    )
