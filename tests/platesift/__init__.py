"""Tests of the platesift package."""
