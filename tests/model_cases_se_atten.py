"""se_atten / se_atten_v2 cases for the shared oracle and physics suites (see tests/model_cases.py).

Only forms whose padding slots are neutral under the suites' random nonzero ``davg`` are listed (strip + smooth):
with a nonzero ``davg`` the other forms depend on the type of the frame's first atom, as DeePMD-kit's reference
does (mtbench/model/descriptor/se_atten.py); tests/oracle/test_se_atten_oracle.py and
tests/physics/test_se_atten_physics.py cover them with ``davg`` handled per form.
"""

from __future__ import annotations

from tests.model_cases import DESCRIPTOR_CASES, DescriptorCase

_ATTEN = {"sel": 40, "rcut": 4.0, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 3, "tebd_dim": 5, "attn": 6,
          "attn_layer": 2, "seed": 1}

DESCRIPTOR_CASES["se_atten_strip_smooth"] = DescriptorCase(
    {**_ATTEN, "type": "se_atten", "tebd_input_mode": "strip", "smooth_type_embedding": True,
     "set_davg_zero": False, "type_one_side": False, "exclude_types": [[0, 1]]},
    rot_mat=True, notes="DPA-1, stripped two-side type embedding, smooth attention, an excluded pair")
DESCRIPTOR_CASES["se_atten_v2"] = DescriptorCase(
    {**_ATTEN, "type": "se_atten_v2", "type_one_side": True, "set_davg_zero": False},
    rot_mat=True, notes="se_atten_v2 (strip + smooth), one-side type embedding")
