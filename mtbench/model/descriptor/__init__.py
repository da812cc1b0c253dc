"""Descriptors: neighbour environments -> per-atom features. Importing this package registers them all."""

from mtbench.model.descriptor import (  # noqa: F401  (registers)
    hybrid,  # noqa: F401  (registers; combines the descriptors above)
    se_atten,  # noqa: F401  (registers se_atten, se_atten_v2)
    se_e2_a,  # noqa: F401  (registers)
    se_e2_r,
    se_e3,
)
from mtbench.model.descriptor.base import (
    DESCRIPTORS,
    Descriptor,
    DescriptorOutput,
    NeighborSpec,
    build_descriptor,
    descriptor_class,
    descriptor_from_dict,
)

__all__ = ["DESCRIPTORS", "Descriptor", "DescriptorOutput", "NeighborSpec", "build_descriptor",
           "descriptor_class", "descriptor_from_dict"]
