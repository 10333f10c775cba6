"""Trains a simple ConvNet on the MNIST dataset. It gets over 99.60% test accuracy after 48 epochs
(but there is still a margin for hyperparameter tuning). Training can take an hour or so!

The lecture's MNIST notebook, cell by cell, with only its import lines changed to fastconv
(each marked "# fastconv:"); OCR slips of the slides are corrected. Run it headless with
``MPLBACKEND=Agg python examples/mnist_notebook.py`` (it needs seaborn, pandas and
scikit-learn, as the notebook does); in Jupyter the plots show inline.
"""
# Import Libraries
from __future__ import print_function

import numpy as np
import math
from math import ceil
import fastconv as tf  # fastconv: was `import tensorflow as tf`
import os
import seaborn as sns
import matplotlib.pyplot as plt  # Library for plotting math functions
import pandas as pd

import fastconv as keras  # fastconv: was `import keras`
from fastconv.datasets import mnist  # fastconv: was `from keras.datasets import mnist`
from fastconv.models import Sequential  # fastconv: was `from keras.models import Sequential`
from fastconv.layers import Dense, Dropout, Flatten  # fastconv: was `from keras.layers ...`
from fastconv.layers import Conv2D, MaxPooling2D  # fastconv: was `from keras.layers ...`
from fastconv import backend as K  # fastconv: was `from keras import backend as K`
from fastconv.preprocessing.image import ImageDataGenerator  # fastconv: was keras.preprocessing
from fastconv.callbacks import ReduceLROnPlateau  # fastconv: was `from keras.callbacks ...`
from sklearn import metrics
from sklearn.metrics import confusion_matrix, classification_report

# Set parameters for plots
plt.rcParams['image.interpolation'] = 'nearest'
plt.rcParams['image.cmap'] = 'gray'

print("TensorFlow version: " + tf.__version__)

LABELS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']


# Define the confusion matrix for the results
def show_confusion_matrix(validations, predictions, num_classes):
    matrix = metrics.confusion_matrix(validations, predictions)
    plt.figure(figsize=(num_classes, num_classes))
    hm = sns.heatmap(matrix,
                     cmap='coolwarm',
                     linecolor='white',
                     linewidths=1,
                     xticklabels=LABELS,
                     yticklabels=LABELS,
                     annot=True,
                     fmt='d')
    plt.yticks(rotation=0)  # Don't rotate (vertically) the y-axis labels
    hm.invert_yaxis()  # Invert the labels of the y-axis
    hm.set_ylim(0, len(matrix))
    plt.title('Confusion Matrix')
    plt.ylabel('True Label')
    plt.xlabel('Predicted Label')
    plt.show()


# Define hyperparameters
batch_size = 512  # size of mini-baches
num_classes = 10  # number of classes/digits: 0, 1, 2, ..., 9
epochs = 3  # how many times all traing examples will be used to train the model

# Input image dimensions
img_rows, img_cols = 28, 28

# Split the data between train and test sets
(x_train, y_train), (x_test, y_test) = mnist.load_data()  # 60000 training and 10000 testing

# Show a few sample digits from the training set
plt.rcParams['figure.figsize'] = (2.5, 2.5)  # set default size of plots
col1 = 10
row1 = 1
fig = plt.figure(figsize=(col1, row1))
for index in range(0, col1 * row1):
    fig.add_subplot(row1, col1, index + 1)
    plt.axis('off')
    plt.imshow(x_train[index])  # index of the sample picture
    plt.title("Class " + str(y_train[index]))
plt.show()

# According to the different formats reshape training and testing data
if K.image_data_format() == 'channels_first':
    x_train = x_train.reshape(x_train.shape[0], 1, img_rows, img_cols)
    x_test = x_test.reshape(x_test.shape[0], 1, img_rows, img_cols)
    input_shape = (1, img_rows, img_cols)
else:
    x_train = x_train.reshape(x_train.shape[0], img_rows, img_cols, 1)
    x_test = x_test.reshape(x_test.shape[0], img_rows, img_cols, 1)
    input_shape = (img_rows, img_cols, 1)

# Transform training and testing data and show their shapes
x_train = x_train.astype('float32')  # Copy this array and cast it to a specified type
x_test = x_test.astype('float32')  # Copy this array and cast it to a specified type
x_train /= 255  # Transform the training data from the range of 0 and 255 to 0 and 1
x_test /= 255  # Transform the testing data from the range of 0 and 255 to 0 and 1
print('x_train shape:', x_train.shape)
print(x_train.shape[0], 'train samples')
print(x_test.shape[0], 'test samples')

# Convert class vectors (integers) to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

# Define the sequential Keras model composed of a few layers
model = Sequential()  # establishes the type of the network model
model.add(Conv2D(filters=32, kernel_size=(3, 3), activation='relu', input_shape=input_shape))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.20))  # Implements the drop out with the probability of 0.20
model.add(Conv2D(64, (3, 3), activation='relu', padding='same'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.25))
model.add(Conv2D(128, (3, 3), activation='relu', padding='same'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.30))
model.add(Conv2D(256, (3, 3), activation='relu', padding='same'))
model.add(Dropout(0.40))
model.add(Conv2D(512, (3, 3), activation='relu', padding='same'))
model.add(Dropout(0.50))
model.add(Flatten())
model.add(Dense(256, activation='relu'))
model.add(Dropout(0.35))
model.add(Dense(128, activation='relu'))
model.add(Dropout(0.25))
model.add(Dense(num_classes, activation='softmax'))
model.summary()

# Compile the model using optimizer
model.compile(loss=keras.losses.categorical_crossentropy,
              optimizer=keras.optimizers.Adadelta(),  # choose the optimizer
              metrics=['acc'])  # List of metrics to be evaluated during training and testing

# Learning rate reduction during the training process
learning_rate_reduction = ReduceLROnPlateau(monitor='val_acc',  # quantity to be monitored
                                            factor=0.5,  # new_lr = lr * factor
                                            patience=5,  # epochs with no improvement
                                            verbose=1,  # 0: quiet, 1: update messages
                                            min_lr=0.001)  # lower bound on the learning rate

# Augmentation of training data
datagen = ImageDataGenerator(
    rotation_range=5,  # rotate images in degrees up to the given degrees
    zoom_range=0.2,  # zoom images
    width_shift_range=0.15,  # shift images horizontally
    height_shift_range=0.15)  # shift images vertically
datagen.fit(x_train)  # Fits the data generator to the sample data x_train

# Advanced train the model, validate, evaluate, and present scores
history = model.fit_generator(datagen.flow(x_train, y_train, batch_size=batch_size),
                              epochs=epochs,  # no of training epochs
                              steps_per_epoch=x_train.shape[0] // batch_size,  # mini-batches
                              validation_data=(x_test, y_test),
                              verbose=1,  # 0 = silent, 1 = progress bar, 2 = one line per epoch
                              callbacks=[learning_rate_reduction])

# Evaluate the model and print out the final scores for the test set
score = model.evaluate(x_test, y_test, verbose=0)  # evaluate the model on the test set
print('Test loss:', score[0])  # print out the loss = score[0] (generalization error)
print('Test accuracy:', score[1])  # print out the generalization accuracy

# Plot training & validation accuracy values
plt.rcParams['figure.figsize'] = (15.0, 5.0)  # set default size of plots
plt.plot(history.history['acc'])  # The history object gets returned by the fit method
plt.plot(history.history['val_acc'])
plt.title('Model accuracy')
plt.ylabel('Accuracy')
plt.xlabel('Epoch')
plt.legend(['Train', 'Test'], loc='upper left')
plt.show()

# Plot training & validation loss values
plt.plot(history.history['loss'])
plt.plot(history.history['val_loss'])
plt.title('Model loss')
plt.ylabel('Loss')
plt.xlabel('Epoch')
plt.legend(['Train', 'Test'], loc='upper left')
plt.show()

# Use the trained model for predictions of the test data
y_pred_test = model.predict(x_test)
# Take the class with the highest probability from the test predictions as a winning one
max_y_pred_test = np.argmax(y_pred_test, axis=1)
max_y_test = np.argmax(y_test, axis=1)

# Show the confusion matrix of the collected results
show_confusion_matrix(max_y_test, max_y_pred_test, num_classes)

# Print classification report
print(classification_report(max_y_test, max_y_pred_test))

# Find out misclassified examples
classcheck = max_y_test - max_y_pred_test  # 0 - when the class is the same, 1 - otherwise
misclassified = np.where(classcheck != 0)[0]
num_misclassified = len(misclassified)

# Print misclassification report
print('Number of misclassified examples: ', str(num_misclassified))
print('Misclassified examples:')
print(misclassified)

# Show misclassified examples
print('Misclassified images (original class : predicted class):')
plt.rcParams['figure.figsize'] = (2.5, 2.5)  # set default size of plots
col = 10
row = 2 * math.ceil(num_misclassified / col)
fig = plt.figure(figsize=(col, row))
for index in range(0, num_misclassified):
    fig.add_subplot(row, col, index + 1 + col * (index // col))
    plt.axis('off')
    plt.imshow(x_test[misclassified[index]].reshape(img_rows, img_cols))
    plt.title(str(max_y_test[misclassified[index]]) + ":" +
              str(max_y_pred_test[misclassified[index]]))
plt.show()
