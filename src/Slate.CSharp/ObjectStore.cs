using Microsoft.FSharp.Core;
using E = Slate.Engine;
using S3s = Slate.ObjectStores.S3;
using Az = Slate.ObjectStores.Azure;

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

    /// <summary>An Amazon S3 (or S3-compatible) bucket.</summary>
    /// <param name="options">Bucket, prefix, endpoint and credentials; unset values come from the SDK's default chains.</param>
    /// <returns>The store.</returns>
    public static ObjectStore S3(S3StoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.Bucket))
            throw new SlateException(SlateErrorKind.Invalid, "S3StoreOptions.Bucket is required");
        var config = new S3s.S3StoreConfig(
            options.Bucket, Opt(options.Prefix), Opt(options.ServiceUrl), Opt(options.Region),
            options.ForcePathStyle || options.ServiceUrl is not null, Opt(options.AccessKey), Opt(options.SecretKey),
            FSharpOption<int>.None);
        return new(new S3s.S3ObjectStore(config));
    }

    /// <summary>An Azure Blob Storage container.</summary>
    /// <param name="options">Connection string, container and prefix.</param>
    /// <returns>The store.</returns>
    public static ObjectStore AzureBlob(AzureBlobStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.Container))
            throw new SlateException(SlateErrorKind.Invalid, "AzureBlobStoreOptions.Container is required");
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
            throw new SlateException(SlateErrorKind.Invalid, "AzureBlobStoreOptions.ConnectionString is required");
        var config = Az.AzureBlobStoreConfigModule.ofConnectionString(options.ConnectionString, options.Container);
        config = new Az.AzureBlobStoreConfig(config.ConnectionString, config.AccountName, config.AccountKey, config.ServiceUri,
            config.Container, Opt(options.Prefix), config.ListPageSize);
        return new(new Az.AzureBlobObjectStore(config));
    }

    private static FSharpOption<string> Opt(string? s) =>
        string.IsNullOrEmpty(s) ? FSharpOption<string>.None : FSharpOption<string>.Some(s);

    /// <summary>Resolves a store URL: <c>memory:///</c>, <c>file:///abs/dir</c>, <c>s3://bucket[/prefix]</c>
    /// (AWS_REGION, the credential chain, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 with path-style addressing) and
    /// <c>az://container[/prefix]</c> (AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY).</summary>
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
            case "s3":
                try { return new(S3s.S3ObjectStore.FromUrl(url)); }
                catch (ArgumentException e) { throw new SlateException(SlateErrorKind.Invalid, $"invalid S3 URL '{url}': {e.Message}", e); }
            case "az":
            case "azure":
                try { return new(Az.AzureBlobObjectStore.FromUrl(url)); }
                catch (ArgumentException e) { throw new SlateException(SlateErrorKind.Invalid, $"invalid Azure URL '{url}': {e.Message}", e); }
            default:
                throw new SlateException(SlateErrorKind.Invalid, $"unknown object store scheme '{uri.Scheme}' in '{url}'");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Inner.Describe;
}

/// <summary>Settings of <see cref="ObjectStore.S3"/>.</summary>
public sealed class S3StoreOptions
{
    /// <summary>The bucket (must exist).</summary>
    public string Bucket { get; set; } = "";
    /// <summary>Key prefix inside the bucket, or null.</summary>
    public string? Prefix { get; set; }
    /// <summary>Custom endpoint for S3-compatible services (implies path-style addressing), or null.</summary>
    public string? ServiceUrl { get; set; }
    /// <summary>Region, or null for the SDK's default chain.</summary>
    public string? Region { get; set; }
    /// <summary>Path-style addressing.</summary>
    public bool ForcePathStyle { get; set; }
    /// <summary>Access key, or null for the SDK's credential chain.</summary>
    public string? AccessKey { get; set; }
    /// <summary>Secret key, or null for the SDK's credential chain.</summary>
    public string? SecretKey { get; set; }
}

/// <summary>Settings of <see cref="ObjectStore.AzureBlob"/>.</summary>
public sealed class AzureBlobStoreOptions
{
    /// <summary>Storage connection string.</summary>
    public string ConnectionString { get; set; } = "";
    /// <summary>Container (created when missing).</summary>
    public string Container { get; set; } = "";
    /// <summary>Blob name prefix, or null.</summary>
    public string? Prefix { get; set; }
}
