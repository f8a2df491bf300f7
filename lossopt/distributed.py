"""Data-parallel placement for :func:`lossopt.minimize` over several devices and hosts.

lossopt builds no communication of its own: it places the data with ``jax.sharding`` and lets
``jax.jit``'s SPMD partitioner do the rest. With the examples (axis 0 of every array in
``args``) split over a one-dimensional device mesh and the parameters replicated,
``minimize``'s one compiled loop runs on every device at once: each device evaluates the
objective on its shard, and XLA inserts the all-reduce that sums the gradient (and the loss)
across devices. The result equals the single-device run up to the order of floating-point
summation.

Single host, every local device::

    mesh = lossopt.distributed.data_mesh()              # all devices, axis "data"
    X, y = lossopt.distributed.shard_batch((X, y), mesh)
    w0 = lossopt.distributed.replicate(w0, mesh)
    result = lossopt.minimize(objective, w0, solver, args=(X, y))

Several hosts (one process per host, or per GPU): call ``jax.distributed.initialize()`` first
in every process (on Slurm, TPU pods and Open MPI it finds the coordinator itself; otherwise
pass ``coordinator_address``, ``num_processes`` and ``process_id``). Then ``data_mesh()``
spans the devices of every process, and each process passes only *its own* rows to
:func:`shard_batch`, which assembles the global arrays with
``jax.make_array_from_process_local_data``; every process then calls ``minimize`` with the
same program and gets the same (replicated) result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lossopt._pytree import PyTree
from lossopt._validation import describe

__all__ = ["as_auto_axes", "data_mesh", "replicate", "shard_batch"]


def data_mesh(devices: Sequence[Any] | int | str | None = None, axis_name: str = "data") -> Mesh:
    """A one-dimensional device mesh for data parallelism.

    Args:
        devices: ``None`` or ``"all"`` (every device of every process, ``jax.devices()``), an
            int ``n`` (the first ``n`` of them), or a sequence of ``jax.Device``.
        axis_name: the mesh axis the examples are split along.

    Returns:
        A ``jax.sharding.Mesh`` of shape ``(num_devices,)``.

    Raises:
        ValueError: ``devices`` asks for more devices than there are, or for none.
        TypeError: ``devices`` of another kind.

    Example:
        >>> mesh = data_mesh(1)
        >>> mesh.axis_names, mesh.devices.shape
        (('data',), (1,))
    """
    available = jax.devices()
    if devices is None or (isinstance(devices, str) and devices == "all"):
        chosen = list(available)
    elif isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"`devices` must be between 1 and the {len(available)} available "
                f"({available[0].platform}) devices; got {devices}"
            )
        chosen = list(available[:devices])
    elif isinstance(devices, Sequence) and not isinstance(devices, str):
        chosen = list(devices)
        if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
            raise TypeError(
                f"`devices` must be a non-empty sequence of jax.Device; got {describe(devices)}"
            )
    else:
        raise TypeError(
            f'`devices` must be None, "all", an int or a sequence of jax.Device; got '
            f"{describe(devices)}"
        )
    if not isinstance(axis_name, str) or not axis_name:
        raise TypeError(f"`axis_name` must be a non-empty string; got {describe(axis_name)}")
    return Mesh(np.asarray(chosen), (axis_name,))


def _data_axis(mesh: Any, axis: str | None) -> str:
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"`mesh` must be a jax.sharding.Mesh (see lossopt.distributed.data_mesh); got "
            f"{describe(mesh)}"
        )
    if axis is None:
        if len(mesh.axis_names) != 1:
            raise ValueError(
                f"`mesh` has axes {mesh.axis_names}: name the one to split the examples along "
                "with `axis`"
            )
        return mesh.axis_names[0]
    if axis not in mesh.axis_names:
        raise ValueError(f"`axis` must be one of the mesh's axes {mesh.axis_names}; got {axis!r}")
    return axis


def shard_batch(args: PyTree, mesh: Mesh, *, axis: str | None = None) -> PyTree:
    """Split axis 0 (the examples) of every array in ``args`` over ``mesh``'s data axis.

    Each leaf of the pytree ``args`` gets ``NamedSharding(mesh, PartitionSpec(axis))``:
    device ``i`` of the axis holds rows ``i * n / d`` to ``(i + 1) * n / d``. Scalars are
    replicated. In a multi-process run (``jax.process_count() > 1``) each process passes its
    own rows and the leaves become global arrays whose leading size is the sum over processes.

    Args:
        args: a pytree of arrays sharing their leading size (e.g. ``(X, y)``).
        mesh: the device mesh (:func:`data_mesh`).
        axis: the mesh axis to split along; may be omitted for a one-axis mesh.

    Returns:
        ``args`` with every leaf a sharded ``jax.Array``.

    Raises:
        ValueError: a leading size that the number of devices along ``axis`` does not divide,
            or leaves with different leading sizes.

    Example:
        >>> import jax.numpy as jnp
        >>> X, y = shard_batch((jnp.ones((8, 3)), jnp.zeros(8)), data_mesh(1))
        >>> tuple(X.sharding.spec), X.sharding.is_fully_replicated
        (('data',), True)
    """
    axis = _data_axis(mesh, axis)
    num_shards = mesh.shape[axis]
    multi_process = jax.process_count() > 1
    # Each process passes the rows of its own devices.
    local = (sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
             if multi_process else num_shards)
    leaves = jax.tree.leaves(args)
    sizes = {np.shape(leaf)[0] for leaf in leaves if np.ndim(leaf) >= 1}
    if len(sizes) > 1:
        raise ValueError(
            "every array in `args` must share its leading size (the number of examples); got "
            f"shapes {[np.shape(leaf) for leaf in leaves]}"
        )
    if sizes and next(iter(sizes)) % local:
        raise ValueError(
            f"`args` has {next(iter(sizes))} examples, which the {local} devices of mesh axis "
            f"{axis!r} do not divide evenly: drop or pad the remainder, or choose a number of "
            "devices that divides it"
        )

    def place(leaf):
        spec = PartitionSpec(axis) if np.ndim(leaf) >= 1 else PartitionSpec()
        sharding = NamedSharding(mesh, spec)
        if multi_process:
            return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))
        return jax.device_put(leaf, sharding)

    return jax.tree.map(place, args)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Place a full copy of every leaf of ``tree`` (e.g. the initial parameters) on every
    device of ``mesh``.

    Example:
        >>> import jax.numpy as jnp
        >>> w = replicate(jnp.zeros(3), data_mesh(1))
        >>> tuple(w.sharding.spec), w.sharding.is_fully_replicated
        ((), True)
    """
    _data_axis(mesh, mesh.axis_names[0] if isinstance(mesh, Mesh) else None)
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda leaf: jax.device_put(leaf, sharding), tree)


def _auto_mesh(mesh: Mesh) -> Mesh | None:
    """``mesh`` with every axis of type Auto, or None when it has no other kind of axis."""
    axis_type = getattr(jax.sharding, "AxisType", None)
    types = getattr(mesh, "axis_types", None)
    if axis_type is None or not types or all(t == axis_type.Auto for t in types):
        return None
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(axis_type.Auto,) * len(types))


def as_auto_axes(tree: PyTree) -> PyTree:
    """Re-place arrays sharded over a mesh with Explicit axes onto the same mesh with Auto axes.

    ``jax.make_mesh`` gives current JAX's meshes explicit axis types, under which every
    operation on a sharded array must say how its output is sharded (a gather of minibatch
    rows, the update of L-BFGS's history from a gradient). :func:`lossopt.minimize` leaves
    those choices to ``jax.jit``'s partitioner, so it calls this on its inputs: the devices
    and the split of every array stay as they are, only the axis types change. Leaves that
    are not such arrays (tracers, numpy arrays, single-device arrays) are returned as they
    are.

    Example:
        >>> import jax.numpy as jnp
        >>> w = as_auto_axes(replicate(jnp.zeros(3), data_mesh(1)))
        >>> w.shape
        (3,)
    """
    def convert(leaf):
        sharding = getattr(leaf, "sharding", None)
        if not isinstance(leaf, jax.Array) or not isinstance(sharding, NamedSharding):
            return leaf
        mesh = _auto_mesh(sharding.mesh)
        if mesh is None:
            return leaf
        return jax.device_put(leaf, NamedSharding(mesh, sharding.spec))

    return jax.tree.map(convert, tree)
