"""Descriptors: neighbour environments -> per-atom features. Importing this package registers them all."""

from mtbench.model.descriptor.base import (
    DESCRIPTORS,
    Descriptor,
    DescriptorOutput,
    NeighborSpec,
    build_descriptor,
    descriptor_class,
    descriptor_from_dict,
)
from mtbench.model.descriptor import se_e2_a  # noqa: F401  (registers)
from mtbench.model.descriptor import se_e2_r, se_e3  # noqa: F401  (registers)
from mtbench.model.descriptor import se_atten  # noqa: F401  (registers se_atten, se_atten_v2)
from mtbench.model.descriptor import hybrid  # noqa: F401  (registers; combines the descriptors above)

__all__ = ["DESCRIPTORS", "Descriptor", "DescriptorOutput", "NeighborSpec", "build_descriptor",
           "descriptor_class", "descriptor_from_dict"]
