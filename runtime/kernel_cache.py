"""On-disk cache of generated Numba kernel modules.

A kernel is a complete Python module text that imports numpy/numba itself and
defines one ``@numba.njit(cache=True, ...)`` entry function (plus helpers).
``load_kernel`` writes it to ``<cache_dir>/tapejit_k_<hash>.py`` (atomically;
the name hashes the source, the tapejit/numba/llvmlite/numpy versions, the
flags and the host CPU), imports it as a registered module so that numba's
``cache=True`` can store and reload the compiled code (``__pycache__/*.nbi``,
``*.nbc`` beside the file, or under ``NUMBA_CACHE_DIR``), and returns a
``KernelHandle``. A second process loading the same kernel compiles nothing.

Robustness (see ../shared/NUMBA_NOTES.md section 1):
- the module is put in ``sys.modules`` before its code runs, else numba's
  cached code cannot be reloaded ("No module named '<dynamic>'");
- the module code is compiled from the in-memory source, never from a stale
  file or ``.pyc``; an existing file whose bytes differ (truncated, garbage)
  is warned about once and rewritten;
- numba's cache of every dispatcher in the module is wrapped: an entry that
  fails to load (truncated/empty/garbage ``.nbi``/``.nbc``: UnpicklingError,
  EOFError, ...) is warned about once, its files are deleted, the index is
  flushed, and the kernel is recompiled and re-saved. This covers every
  signature, also calls made through ``handle.fn``;
- ``.nbi``/``.nbc`` payloads carry a sha256 digest (numba's own format has
  none: a bit-flipped ``.nbc`` that still unpickles aborts the process inside
  LLVM's bitcode reader); a mismatch counts as corruption;
- several processes may share the directory: every write is a temp file plus
  ``os.replace`` (content-identical races are harmless; numba's own writes are
  atomic too).
"""
import atexit
import hashlib
import importlib.util
import linecache
import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings

__all__ = ["STATS", "KernelCacheWarning", "KernelHandle", "cache_dir", "kernel_name", "load_kernel",
           "module_name", "source_hash"]

ENV_VAR = "TAPEJIT_CACHE_DIR"
MODULE_PREFIX = "tapejit_k_"
HASH_CHARS = 20
_FORMAT = "tapejit-kernel-1"  # bump when the hashed inputs or the on-disk layout change

# Counters over the whole process (every dispatcher loaded here, every signature).
STATS = {"kernel_compiles": 0, "disk_cache_loads": 0, "corrupt_entries_recovered": 0}

_LOCK = threading.RLock()           # loading and directory resolution
_STATS_LOCK = threading.Lock()      # counters only; also taken under numba's compiler lock
_RESOLVED = {}      # configured directory -> directory actually used
_TEMPORARY = None   # this process's temporary directory, once needed (a fallback, or tj.compile(cache=False))
_FELL_BACK = False  # whether a configured directory fell back to it (warned once)
_HANDLES = {}       # (module name, entry) -> KernelHandle (a kernel is loaded once per process)


class KernelCacheWarning(UserWarning):
    """The kernel cache could not be used as configured, or held a corrupt entry."""


def _bump(counter):
    with _STATS_LOCK:
        STATS[counter] += 1


# ----------------------------------------------------------------------------- directory

def cache_dir():
    """The kernel cache directory: $TAPEJIT_CACHE_DIR, default ~/.cache/tapejit,
    created on demand. If it cannot be created or written, a temporary directory
    of this process is used instead (one warning); nothing then persists."""
    configured = os.environ.get(ENV_VAR) or os.path.join("~", ".cache", "tapejit")
    configured = os.path.abspath(os.path.expanduser(configured))
    resolved = _RESOLVED.get(configured)
    if resolved is not None:
        return resolved
    with _LOCK:
        if configured not in _RESOLVED:
            try:
                os.makedirs(configured, exist_ok=True)
                _probe_writable(configured)
                _RESOLVED[configured] = configured
            except OSError as e:
                _RESOLVED[configured] = _fall_back(configured, e)
        return _RESOLVED[configured]


def _probe_writable(directory):
    # os.access is wrong under root and on some network filesystems: really write.
    fd, probe = tempfile.mkstemp(prefix=".tapejit-probe-", dir=directory)
    os.close(fd)
    os.unlink(probe)


def temporary_dir():
    """This process's temporary kernel directory, removed at exit: kernels there do
    not outlive the process."""
    global _TEMPORARY
    with _LOCK:
        if _TEMPORARY is None:
            _TEMPORARY = tempfile.mkdtemp(prefix="tapejit-kernels-")
            atexit.register(shutil.rmtree, _TEMPORARY, True)
        return _TEMPORARY


def _fall_back(configured, error, stacklevel=4):
    global _FELL_BACK
    with _LOCK:
        directory = temporary_dir()
        if not _FELL_BACK:
            _FELL_BACK = True
            warnings.warn(f"tapejit: kernel cache directory {configured} is not writable ({error}); "
                          f"using the temporary directory {directory} for this process (set {ENV_VAR} "
                          f"to a writable directory to keep compiled kernels across processes)",
                          KernelCacheWarning, stacklevel=stacklevel)
        _RESOLVED[configured] = directory
        return directory


# ----------------------------------------------------------------------------- names

def source_hash(*parts):
    """HASH_CHARS hex digits of sha256 over the parts (str or bytes)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else bytes(part))
        h.update(b"\0")
    return h.hexdigest()[:HASH_CHARS]


def kernel_name(key):
    """A function name unique to `key` (e.g. a hash of the fused graph). Generated
    functions must never share a name across modules (numba/numba#10486)."""
    return f"k_{key}"


def _tapejit_version():
    # Lazy: tapejit/__init__ defines __version__ after importing the runtime.
    version = getattr(sys.modules.get("tapejit"), "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version
            version = dist_version("tapejit")
        except Exception:  # noqa: BLE001 - not installed as a distribution
            version = "unknown"
    return version


_ENVIRONMENT = None


def _environment():
    """numba, llvmlite, numpy versions and the host CPU name (computed once)."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        import llvmlite
        import numba  # initialises LLVM for get_host_cpu_name
        import numpy
        from llvmlite import binding
        cpu = os.environ.get("NUMBA_CPU_NAME") or binding.get_host_cpu_name()
        _ENVIRONMENT = (numba.__version__, llvmlite.__version__, numpy.__version__, cpu)
    return _ENVIRONMENT


def module_name(source, flags="", version=None):
    """tapejit_k_<hash> for a kernel source under the running versions and CPU."""
    numba_v, llvmlite_v, numpy_v, cpu = _environment()
    version = _tapejit_version() if version is None else version
    return MODULE_PREFIX + source_hash(_FORMAT, version, numba_v, llvmlite_v, numpy_v, cpu, flags, source)


# ----------------------------------------------------------------------------- files

def _atomic_write(path, data):
    tmp = f"{path}.tmp{os.getpid()}.{uuid.uuid4().hex[:12]}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _publish(directory, name, data):
    """Write the module file unless an identical one exists. Returns its path."""
    path = os.path.join(directory, name + ".py")
    try:
        with open(path, "rb") as f:
            existing = f.read()
    except FileNotFoundError:
        existing = None
    except (NotADirectoryError, PermissionError):
        raise  # the directory is the problem, not the entry: the caller falls back
    except OSError:  # unreadable: treat as corrupt
        existing = b""
    if existing == data:
        return path
    if existing is not None:
        warnings.warn(f"tapejit: corrupt kernel cache entry {path}, rewriting", KernelCacheWarning, stacklevel=3)
        _bump("corrupt_entries_recovered")
    _atomic_write(path, data)
    return path


# ----------------------------------------------------------------------------- numba cache

class CorruptCacheEntry(Exception):
    """A numba cache file whose checksum does not match its content."""


def _install_checksums(cache_file):
    """Give numba's IndexDataCacheFile sha256-checked payloads (new index version
    tag, so numba-format files read as a miss). Skipped if numba's layout differs."""
    try:
        from numba.core.caching import IndexDataCacheFile
    except ImportError:
        return
    needed = ("_index_path", "_version", "_source_stamp", "_dump", "_data_path", "_open_for_write")
    if type(cache_file) is not IndexDataCacheFile or not all(hasattr(cache_file, a) for a in needed):
        return
    cache_file.__class__ = _checked_class()
    cache_file._version = f"{cache_file._version}+{_FORMAT}-sha256"


def _checked(blob, path):
    digest, payload = blob[:32], blob[32:]
    if len(blob) < 32 or hashlib.sha256(payload).digest() != digest:
        raise CorruptCacheEntry(f"checksum mismatch in {path}")
    return payload


def _make_checked_class():
    from numba.core.caching import IndexDataCacheFile

    class CheckedCacheFile(IndexDataCacheFile):
        def _load_index(self):
            try:
                with open(self._index_path, "rb") as f:
                    version = pickle.load(f)
                    blob = f.read()
            except FileNotFoundError:
                return {}
            if version != self._version:
                return {}  # another numba version or format: a miss, overwritten on save
            stamp, overloads = pickle.loads(_checked(blob, self._index_path))
            return overloads if stamp == self._source_stamp else {}

        def _save_index(self, overloads):
            payload = self._dump((self._source_stamp, overloads))
            with self._open_for_write(self._index_path) as f:
                pickle.dump(self._version, f, protocol=-1)
                f.write(hashlib.sha256(payload).digest())
                f.write(payload)

        def _load_data(self, name):
            path = self._data_path(name)
            with open(path, "rb") as f:
                blob = f.read()
            return pickle.loads(_checked(blob, path))

        def _save_data(self, name, data):
            payload = self._dump(data)
            with self._open_for_write(self._data_path(name)) as f:
                f.write(hashlib.sha256(payload).digest())
                f.write(payload)

    return CheckedCacheFile


_CHECKED_CLASS = []


def _checked_class():
    if not _CHECKED_CLASS:
        _CHECKED_CLASS.append(_make_checked_class())
    return _CHECKED_CLASS[0]


class _GuardedCache:
    """Wraps a dispatcher's numba cache: counts hits and compiles, and turns a
    cache entry that fails to load into a warning, a cleanup and a recompile."""

    def __init__(self, inner, label):
        self._inner = inner
        self._label = label
        self._warned_save = False

    def __getattr__(self, name):  # anything else numba may use
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __repr__(self):
        return f"<tapejit guarded {self._inner!r}>"

    @property
    def cache_path(self):
        return self._inner.cache_path

    def enable(self):
        self._inner.enable()

    def disable(self):
        self._inner.disable()

    def flush(self):
        self._inner.flush()

    def load_overload(self, sig, target_context):
        try:
            data = self._inner.load_overload(sig, target_context)
        except Exception as e:  # noqa: BLE001 - any unreadable entry means: rebuild it
            self._recover(e)
            data = None
        _bump("kernel_compiles" if data is None else "disk_cache_loads")
        return data

    def save_overload(self, sig, data):
        try:
            self._inner.save_overload(sig, data)
        except Exception as e:  # noqa: BLE001 - the compiled kernel still runs
            if not self._warned_save:
                self._warned_save = True
                warnings.warn(f"tapejit: could not write the kernel cache entry of {self._label} "
                              f"({type(e).__name__}: {e}); it will be compiled again next time",
                              KernelCacheWarning, stacklevel=2)

    def _files(self):
        cache_file = getattr(self._inner, "_cache_file", None)
        index = getattr(cache_file, "_index_path", None)
        if index is None:
            return None, []
        directory, base = os.path.split(index)
        stem = base.removesuffix(".nbi")
        try:
            data = [os.path.join(directory, f) for f in os.listdir(directory)
                    if f.startswith(stem + ".") and f.endswith(".nbc")]
        except OSError:
            data = []
        return index, data

    def _recover(self, error):
        index, data = self._files()
        warnings.warn(f"tapejit: corrupt kernel cache entry {index or self._label}, recompiling "
                      f"({type(error).__name__}: {error})", KernelCacheWarning, stacklevel=2)
        _bump("corrupt_entries_recovered")
        for path in data + ([index] if index else []):
            try:
                os.unlink(path)
            except OSError:
                pass
        try:
            self._inner.flush()  # a fresh, empty index; the recompiled code is saved next
        except Exception:  # noqa: BLE001
            self._inner.disable()  # cannot rewrite: keep working without the disk cache


def _guard_dispatchers(module, label):
    for value in list(vars(module).values()):
        cache = getattr(value, "_cache", None)
        cache_file = getattr(cache, "_cache_file", None)
        if cache_file is None or not hasattr(value, "py_func") or isinstance(cache, _GuardedCache):
            continue  # not a cache=True dispatcher (inner helpers are compiled into the entry)
        if getattr(value.py_func, "__module__", None) != module.__name__:
            continue  # imported from elsewhere
        _install_checksums(cache_file)
        value._cache = _GuardedCache(cache, f"{label}:{value.py_func.__qualname__}")


# ----------------------------------------------------------------------------- loading

class KernelHandle:
    """A loaded kernel. Call it, or (hot path, after the first call) call `.fn`,
    the numba dispatcher, directly.

    path, name        the module file and its module name (tapejit_k_<hash>)
    fn                the numba dispatcher of the entry function
    loaded_from_disk  after the first call: True if numba's disk cache served it
                      (None before the first call)
    compile_seconds   time the first call spent compiling (0.0 when loaded from disk)
    first_call_seconds  wall time of the first call (includes numba's one-time
                      LLVM/runtime initialisation, ~0.2 s in a fresh process)
    """

    __slots__ = ("_lock", "_pending", "compile_seconds", "first_call_seconds", "fn", "loaded_from_disk",
                 "module", "name", "path")

    def __init__(self, fn, path, name, module):
        self.fn = fn
        self.path = path
        self.name = name
        self.module = module
        self.loaded_from_disk = None
        self.compile_seconds = None
        self.first_call_seconds = None
        self._pending = True
        self._lock = threading.Lock()

    def __call__(self, *args):
        if self._pending:
            return self._first_call(args)
        return self.fn(*args)

    def _first_call(self, args):
        with self._lock:
            if not self._pending:
                return self.fn(*args)
            stats = self.fn.stats
            hits, misses = sum(stats.cache_hits.values()), sum(stats.cache_misses.values())
            start = time.perf_counter()
            result = self.fn(*args)
            elapsed = time.perf_counter() - start
            compiled = sum(stats.cache_misses.values()) > misses
            self.loaded_from_disk = not compiled and sum(stats.cache_hits.values()) > hits
            self.compile_seconds = elapsed if compiled else 0.0
            self.first_call_seconds = elapsed
            self._pending = False
            return result

    def __repr__(self):
        state = ("not called yet" if self._pending else
                 "loaded from disk" if self.loaded_from_disk else f"compiled in {self.compile_seconds:.3f} s")
        return f"<KernelHandle {self.name}.{self.fn.__name__} ({state}) {self.path}>"


def load_kernel(source, entry, flags="", version=None, persist=True):
    """Load (writing it first if needed) the kernel module `source` and return a
    KernelHandle of its function `entry` (an @numba.njit(cache=True) dispatcher).

    `flags`: anything else that changes the compiled code (part of the name hash).
    `version`: the tapejit version to hash (default: tapejit.__version__).
    `persist`: False writes the module (and Numba's entries) to this process's
    temporary directory, not the cache, unless this process already loaded it.
    """
    name = module_name(source, flags, version)
    handle = _HANDLES.get((name, entry))
    if handle is not None:
        return handle
    with _LOCK:
        handle = _HANDLES.get((name, entry))
        if handle is not None:
            return handle
        data = source.encode("utf-8")
        directory = cache_dir() if persist else temporary_dir()
        try:
            path = _publish(directory, name, data)
        except OSError as e:  # e.g. the directory turned read-only or the disk is full
            if directory == _TEMPORARY:
                raise
            directory = _fall_back(directory, e, stacklevel=3)
            path = _publish(directory, name, data)
        module = sys.modules.get(name)
        if module is None or getattr(module, "__file__", None) != path:
            module = _import(name, path, source)
        fn = getattr(module, entry, None)
        if fn is None:
            raise ValueError(f"tapejit: generated kernel module {path} defines no function {entry!r}")
        if not hasattr(fn, "py_func") or not hasattr(fn, "stats"):
            raise TypeError(f"tapejit: {entry!r} in {path} is not a numba.njit function")
        handle = KernelHandle(fn, path, name, module)
        _HANDLES[name, entry] = handle
        return handle


def _import(name, path, source):
    linecache.cache[path] = (len(source), None, source.splitlines(True), path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before the code runs: numba records the module by name
    try:
        # The in-memory source is the truth (the file was checked to hold exactly
        # these bytes); no .pyc is read or written.
        exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)  # noqa: S102
    except BaseException:
        sys.modules.pop(name, None)
        raise
    _guard_dispatchers(module, path)
    return module
