"""Does every shared library a CUDA build of MXNet needs resolve, after the package's preload?

    python tools/check_cuda_libraries.py

Run it in an environment made with ``pip install -e ".[cu112]"``; it needs no GPU. It imports
``brain2pix_gluon`` (which loads the nvidia-*-cu11 wheels' libraries, cuda_libraries.py) but not
MXNet, reads the dynamic section of ``libmxnet.so`` and of every library it pulls in, and resolves
each soname the way the dynamic loader would: already loaded, the library's RPATH/RUNPATH, then
the system's search path. It prints each library and where it was found. The driver's
``libcuda.so.1`` may be missing on a machine without a GPU; anything else missing exits 1.
Not part of ``make test``: the cu112 install takes 3.7 GB (docs/gpu.md).
"""

import ctypes
import importlib.util
import os
import struct
import sys

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 1, 5, 15, 29
RTLD_DI_LINKMAP = 2


def dynamic_section(path):
    """``(needed sonames, search folders)`` of an ELF64 little-endian shared library: its
    DT_NEEDED entries and its RPATH/RUNPATH with ``$ORIGIN`` expanded."""
    with open(path, "rb") as handle:
        header = handle.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
        loads, dynamic = [], None
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(
                "<IIQQQQQQ", table, i * phentsize)
            if p_type == PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
        if dynamic is None:
            return [], []
        handle.seek(dynamic[0])
        raw = handle.read(dynamic[1])
        entries = [struct.unpack_from("<qQ", raw, i) for i in range(0, len(raw), 16)]
        strtab = next(v for tag, v in entries if tag == DT_STRTAB)
        strtab_offset = next(off + strtab - vaddr for vaddr, off, size in loads
                             if vaddr <= strtab < vaddr + size)

        def string(index):
            handle.seek(strtab_offset + index)
            return handle.read(4096).split(b"\0", 1)[0].decode()

        needed, folders = [], []
        for tag, value in entries:
            if tag == DT_NULL:
                break
            if tag == DT_NEEDED:
                needed.append(string(value))
            elif tag in (DT_RPATH, DT_RUNPATH):
                origin = os.path.dirname(os.path.realpath(path))
                folders += [f.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
                            for f in string(value).split(":") if f]
    return needed, folders


def loaded_path(soname, load=False):
    """Path of ``soname`` as the loader has it in this process (None when it is not loaded, or
    with ``load`` when the system's search path does not find it either)."""
    try:
        lib = ctypes.CDLL(soname, mode=os.RTLD_GLOBAL | (0 if load else os.RTLD_NOLOAD))
    except OSError:
        return None
    link_map = ctypes.c_void_p()
    libdl = ctypes.CDLL("libdl.so.2")
    if libdl.dlinfo(ctypes.c_void_p(lib._handle), RTLD_DI_LINKMAP, ctypes.byref(link_map)) != 0:
        return soname
    name = ctypes.cast(link_map.value + ctypes.sizeof(ctypes.c_void_p),
                       ctypes.POINTER(ctypes.c_char_p)).contents.value
    return name.decode() if name else soname


def resolve(soname, folders):
    """``(path, how)`` of a needed soname, or ``(None, why)``."""
    path = loaded_path(soname)
    if path:
        return path, "already loaded"
    for folder in folders:
        candidate = os.path.join(folder, soname)
        if os.path.isfile(candidate):
            return candidate, "RPATH/RUNPATH"
    path = loaded_path(soname, load=True)
    if path:
        return path, "system search path"
    return None, "NOT FOUND"


def main():
    import brain2pix_gluon.cuda_libraries as cuda

    build = cuda.cuda_build()
    if build is None:
        print("no CUDA build of MXNet is installed here (pip install -e \".[cu112]\")")
        return 2
    found, missing = cuda.preload()
    spec = importlib.util.find_spec("mxnet")   # locates the package without importing it
    libmxnet = os.path.join(spec.submodule_search_locations[0], "libmxnet.so")
    print(f"{build[0]} {build[1]}: {libmxnet}")
    print(f"preloaded by brain2pix_gluon.cuda_libraries: {len(found)} libraries, "
          f"{len(missing)} missing {sorted(missing) if missing else ''}\n")
    unresolved = {}

    def check(path, verbose):
        """Resolve the needs of one library; print all of them, or only those not already loaded
        from the system's folders. Returns the preloaded wheels' libraries it needs."""
        needed, folders = dynamic_section(path)
        lines, quiet, wheels = [], 0, []
        for soname in needed:
            where, how = resolve(soname, folders)
            if where is None:
                unresolved.setdefault(soname, os.path.basename(path))
            if soname in found:
                how = "preloaded"
                wheels.append(where)
            if verbose or where is None or how != "already loaded":
                lines.append(f"  {soname:28s} {where or '-':84s} {how}")
            else:
                quiet += 1
        print(f"{os.path.basename(path)} needs:" + (f" ({quiet} system libraries already loaded"
                                                  f" not listed)" if quiet else ""))
        print("\n".join(lines) if lines else "  nothing else")
        return wheels

    queue, seen = [libmxnet], {libmxnet}
    while queue:
        path = queue.pop(0)
        for dep in check(path, verbose=path == libmxnet):
            if dep not in seen:
                seen.add(dep)
                queue.append(dep)
    # cuDNN and NVRTC open their helpers (libcudnn_*_infer/train, libnvrtc-builtins) at run time
    # from their own folder: their needs must resolve too
    folders = sorted({os.path.dirname(p) for p in found.values() if os.path.isabs(p)})
    helpers = [os.path.join(f, n) for f in folders for n in sorted(os.listdir(f))
               if ".so" in n and os.path.join(f, n) not in seen]
    print(f"\nlibraries the preloaded ones may open at run time ({len(helpers)}):")
    for path in helpers:
        check(path, verbose=False)
    allowed = {cuda.DRIVER_LIBRARY}
    print()
    for soname, needer in sorted(unresolved.items()):
        note = ("the NVIDIA driver's library: expected on a machine without a GPU driver"
                if soname in allowed else "MISSING")
        print(f"unresolved: {soname} (needed by {needer}): {note}")
    bad = sorted(set(unresolved) - allowed)
    if bad:
        print(f"FAILED: {', '.join(bad)} unresolved; fix: {cuda.FIX_COMMAND}")
        return 1
    print("OK: every library libmxnet.so needs resolves"
          + (f", except {', '.join(sorted(set(unresolved)))}" if unresolved else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
