"""The preset networks, each a generator kind registered in :data:`colorkit.models.GENERATORS`.

``pix2pix_unet`` (:mod:`.pix2pix`), ``fusion_net`` (:mod:`.fusion`), ``conv_autoencoder`` and
``autoencoder_fusion`` (:mod:`.autoencoder`); their shared pieces are in :mod:`.blocks`. Importing this
package registers them (``colorkit.models`` does, so ``load_colorizer`` rebuilds any of them). Which recipe
trains which network: :mod:`colorkit.presets`.
"""

from .autoencoder import AutoencoderConfig, AutoencoderFusionConfig
from .fusion import FusionConfig
from .pix2pix import Pix2PixConfig, unet_depth

__all__ = ["AutoencoderConfig", "AutoencoderFusionConfig", "FusionConfig", "Pix2PixConfig", "unet_depth"]
