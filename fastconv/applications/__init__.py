"""Ready-made networks (Keras' ``applications``): the lecture's nets and recipes, LeNet-5, and
the lecture's ImageNet architectures with Keras' arguments and parameter counts (no pretrained
weights: ``weights=None`` only)."""
from fastconv.applications.alexnet import AlexNet
from fastconv.applications.inception import GoogLeNet, InceptionV1, InceptionV3, InceptionV4
from fastconv.applications.inception_resnet import InceptionResNetV2
from fastconv.applications.lecture import (CIFAR10_RECIPE, MNIST_RECIPE, Recipe, cifar10_net,
                                           example_25x25_net, mnist_net, summary_net)
from fastconv.applications.lenet import LeNet5
from fastconv.applications.resnet import ResNet34, ResNet50, ResNeXt50
from fastconv.applications.vgg import VGG16, VGG19
from fastconv.applications.xception import Xception
