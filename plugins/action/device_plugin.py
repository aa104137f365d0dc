# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs gpu_slicing.eks.device_plugin and shows its progress lines during long waits (see plugin_utils/progress_action.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpu_slicing.eks.plugins.plugin_utils.progress_action import ProgressActionBase


class ActionModule(ProgressActionBase):
    pass
