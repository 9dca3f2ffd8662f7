using E = Slate.Engine;

namespace Slate;

/// <summary>Where a database lives: in memory, a local folder, S3 or Azure Blob.</summary>
public sealed class ObjectStore
{
    internal E.IObjectStore Inner { get; }

    private ObjectStore(E.IObjectStore inner) => Inner = inner;

    /// <summary>Wraps an engine object store (custom backends, decorators).</summary>
    /// <param name="store">The store.</param>
    /// <returns>The store.</returns>
    public static ObjectStore FromEngine(E.IObjectStore store) => new(store ?? throw new ArgumentNullException(nameof(store)));

    /// <summary>A new, empty in-memory store (tests, caches).</summary>
    /// <returns>The store.</returns>
    public static ObjectStore InMemory() => new(new E.InMemoryObjectStore());

    /// <summary>A store rooted at a local folder (the embedded default); the folder is created when missing.</summary>
    /// <param name="root">Absolute or relative folder path.</param>
    /// <returns>The store.</returns>
    public static ObjectStore LocalFileSystem(string root)
    {
        ArgumentNullException.ThrowIfNull(root);
        return new(new E.LocalFileObjectStore(Path.GetFullPath(root)));
    }

    /// <summary>Resolves a store URL: <c>memory:///</c>, <c>file:///abs/dir</c>.</summary>
    /// <param name="url">The URL.</param>
    /// <returns>The store.</returns>
    /// <exception cref="SlateException">Invalid for an unknown scheme or malformed URL.</exception>
    public static ObjectStore Resolve(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
            throw new SlateException(SlateErrorKind.Invalid, $"invalid object store URL '{url}'");
        switch (uri.Scheme)
        {
            case "memory":
                return InMemory();
            case "file":
                if (!string.IsNullOrEmpty(uri.Host) && uri.Host != "localhost")
                    throw new SlateException(SlateErrorKind.Invalid, $"file URLs must be local ('{url}')");
                var path = Uri.UnescapeDataString(uri.AbsolutePath);
                if (string.IsNullOrEmpty(path) || path == "/" && url.TrimEnd('/') != "file:")
                    path = "/";
                return LocalFileSystem(path);
            default:
                throw new SlateException(SlateErrorKind.Invalid, $"unknown object store scheme '{uri.Scheme}' in '{url}'");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Inner.Describe;
}
