"""Ready-made networks (Keras' ``applications``): the lecture's nets and LeNet-5."""
from fastconv.applications.lecture import (CIFAR10_RECIPE, MNIST_RECIPE, Recipe, cifar10_net,
                                           example_25x25_net, mnist_net, summary_net)
from fastconv.applications.lenet import LeNet5
