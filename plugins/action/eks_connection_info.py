# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs gpu_slicing.eks.eks_connection_info and censors the displayed result when it holds a token.

A module cannot mark one of its return values ``no_log``; an action plugin can set
``_ansible_no_log`` on the result, which hides it from callbacks (screen, AWX job events)
while ``register`` keeps the values for ``module_defaults``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        result.update(self._execute_module(module_name="gpu_slicing.eks.eks_connection_info",
                                           module_args=self._task.args, task_vars=task_vars))
        if result.get("api_key"):
            result["_ansible_no_log"] = True
        return result
