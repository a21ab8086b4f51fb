"""Trainer resources: the same asset trains on a laptop CPU or a CUDA box, chosen by configuration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace

import dagster as dg

from tuneline.training import DevicePlan, TrainConfig, main, plan_device


class TrainerResource(dg.ConfigurableResource, ABC):
    @abstractmethod
    def train(self, config: TrainConfig) -> dict: ...


class LocalTrainer(TrainerResource):
    """Runs tuneline.training.main in this process. device: auto | cpu | cuda; quantization: none | 4bit."""

    device: str = "auto"
    quantization: str = "none"

    def plan(self) -> DevicePlan:
        import torch

        cuda = torch.cuda.is_available()
        return plan_device(self.device, self.quantization, cuda, cuda and torch.cuda.is_bf16_supported())

    def train(self, config: TrainConfig) -> dict:
        self.plan()  # fail fast, before any data is touched, on an impossible device/quantization combination
        return main(replace(config, device=self.device, quantization=self.quantization))
