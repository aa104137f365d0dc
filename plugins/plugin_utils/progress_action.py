# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin base: run the module as usual and show its progress lines while it runs.

The module appends lines to the file named by ``GPU_SLICING_PROGRESS_FILE``
(``module_utils/progress.py``); a thread here shows each new line through Ansible's display,
on stderr (stdout may carry a machine-read callback's document, such as the json callback's):
a terminal shows it, and under ansible-runner (AWX) it becomes a job event, so the job output
shows it as it happens.

Only where the module runs on the controller (``connection: local``, as the collection's
playbooks run it) can the file be read while the module runs; elsewhere, and for async
tasks, the module runs exactly as without this plugin.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile
import threading

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

PROGRESS_FILE_ENV = "GPU_SLICING_PROGRESS_FILE"  # the name module_utils/progress.py reads
POLL_SECONDS = 0.5


class ProgressActionBase(ActionBase):
    _supports_check_mode = True
    _supports_async = True
    _progress_path = None

    def run(self, tmp=None, task_vars=None):
        result = super(ProgressActionBase, self).run(tmp, task_vars)
        del tmp  # no effect since ansible-core 2.x; kept for the signature
        wrap_async = self._task.async_val and not self._connection.has_native_async
        follow = not wrap_async and getattr(self._connection, "transport", None) == "local"
        if not follow:
            return merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))

        host = (task_vars or {}).get("inventory_hostname", "localhost")
        fd, self._progress_path = tempfile.mkstemp(prefix="gpu-slicing-progress-")
        os.close(fd)
        stop = threading.Event()
        follower = threading.Thread(target=self._follow, args=(self._progress_path, host, stop))
        follower.daemon = True
        follower.start()
        try:
            result = merge_hash(result, self._execute_module(task_vars=task_vars))
        finally:
            stop.set()
            follower.join(5)
            try:
                os.unlink(self._progress_path)
            except OSError:
                pass
            self._progress_path = None
        self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _compute_environment_string(self, raw_environment_out=None):
        if not self._progress_path:
            return super(ProgressActionBase, self)._compute_environment_string(raw_environment_out)
        environment = {}
        super(ProgressActionBase, self)._compute_environment_string(environment)
        environment[PROGRESS_FILE_ENV] = self._progress_path
        if isinstance(raw_environment_out, dict):
            raw_environment_out.clear()
            raw_environment_out.update(environment)
        return self._connection._shell.env_prefix(**environment)

    def _follow(self, path, host, stop):
        """Show each complete line the module appends, until ``stop`` is set, then the rest."""
        offset, pending = 0, ""
        while True:
            done = stop.wait(POLL_SECONDS)
            try:
                with open(path, "r") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                    offset = handle.tell()
            except (IOError, OSError):
                chunk = ""
            pending += chunk
            lines = pending.split("\n")
            pending = lines.pop()
            for line in lines:
                if line.strip():
                    # stderr: stdout may be a machine-read callback's (json, yaml) document.
                    self._display.display("[%s] %s" % (host, line), stderr=True)
            if done:
                return
