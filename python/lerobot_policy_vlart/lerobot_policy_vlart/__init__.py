"""vlart as a LeRobot policy plugin: `--policy.type=vlart --policy.checkpoint=DIR`.

Importing the package registers the "vlart" policy type with LeRobot's config registry; LeRobot then
finds `VlartPolicy` in `lerobot_policy_vlart.modeling_vlart` and `make_vlart_pre_post_processors` in
`lerobot_policy_vlart.processor_vlart` by its naming convention.
"""
from .configuration_vlart import VlartConfig  # noqa: F401

__all__ = ["VlartConfig"]
