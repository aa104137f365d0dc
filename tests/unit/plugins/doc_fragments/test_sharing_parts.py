"""gpu_sharing's NESTED doc fragment is written out in full: it must say what the two modules'
own fragments say (device_plugin's and karpenter_gpu_nodepool's options, less state)."""

import yaml

from ansible_collections.gpu_slicing.eks.plugins.doc_fragments.sharing_parts import ModuleDocFragment
from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import (
    device_plugin_arg_spec,
    gpu_sharing_arg_spec,
    nodepool_arg_spec,
)


def options(fragment):
    return yaml.safe_load(fragment)["options"]


NESTED = options(ModuleDocFragment.NESTED)


def test_each_part_documents_its_modules_options_but_state():
    for part, fragment in (("device_plugin", ModuleDocFragment.DEVICE_PLUGIN),
                           ("nodepool", ModuleDocFragment.NODEPOOL)):
        own = options(fragment)
        assert "state" in own
        del own["state"]
        assert NESTED[part]["suboptions"] == own, part
        # the same order as the module's own page
        assert list(NESTED[part]["suboptions"]) == list(own), part


def test_the_parts_are_dicts_device_plugin_required():
    assert sorted(NESTED) == ["device_plugin", "nodepool"]
    for part, required in (("device_plugin", True), ("nodepool", False)):
        assert NESTED[part]["type"] == "dict" and NESTED[part]["required"] is required
    assert "When not set, no NodePool is managed" in " ".join(NESTED["nodepool"]["description"])


def test_documented_options_are_the_argument_spec():
    """validate-modules compares docs and spec in sanity; this says which side drifted, sooner."""
    spec = gpu_sharing_arg_spec()
    for part, own_spec in (("device_plugin", device_plugin_arg_spec()), ("nodepool", nodepool_arg_spec())):
        assert set(NESTED[part]["suboptions"]) == set(spec[part]["options"]) == set(own_spec) - {"state"}, part
