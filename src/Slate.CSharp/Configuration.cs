using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Slate;

/// <summary>
/// Binds Slate's option classes from an <see cref="IConfiguration"/> section (appsettings.json,
/// environment variables, command line). Unlike the general-purpose binder it is strict: an
/// unknown key, a value of the wrong shape or a component (merge operator, logger factory, clock)
/// set in configuration is <see cref="SlateErrorKind.Invalid"/>, naming the key and the cause.
/// </summary>
/// <remarks>
/// Values: numbers in invariant culture; sizes may end in <c>KiB</c>, <c>MiB</c> or <c>GiB</c>
/// (<c>"64MiB"</c>); durations are a number with <c>ms</c>, <c>s</c>, <c>m</c>, <c>h</c> or
/// <c>d</c>, a bare number of seconds, or a .NET time span (<c>"00:05:00"</c>); enums by name,
/// case-insensitive; booleans <c>true</c>/<c>false</c>. A nullable setting (<c>FlushInterval</c>,
/// <c>DefaultTtl</c>, <c>ObjectStoreMaxRetries</c>, <c>Compactor</c>, <c>GarbageCollector</c>, ...)
/// is turned off with <c>null</c>, an empty value, <c>"none"</c>, <c>"off"</c> or
/// <c>"disabled"</c>. Keys are matched case-insensitively, as configuration keys are.
/// </remarks>
public static class SlateConfiguration
{
    private static readonly string[] NoneWords = ["", "none", "null", "off", "disabled"];

    /// <summary>The options of a writer: defaults, overridden by the keys of <paramref name="section"/>.</summary>
    /// <exception cref="SlateException">Invalid for an unknown key or a malformed value.</exception>
    public static SlateOptions GetSlateOptions(this IConfiguration section) => Bind<SlateOptions>(section);

    /// <summary>The options of a reader, as <see cref="GetSlateOptions"/>.</summary>
    /// <exception cref="SlateException">Invalid for an unknown key or a malformed value.</exception>
    public static ReaderOptions GetReaderOptions(this IConfiguration section) => Bind<ReaderOptions>(section);

    /// <summary>Options of a standalone compactor, as <see cref="GetSlateOptions"/>.</summary>
    /// <exception cref="SlateException">Invalid for an unknown key or a malformed value.</exception>
    public static CompactorOptions GetCompactorOptions(this IConfiguration section) => Bind<CompactorOptions>(section);

    /// <summary>Options of a garbage collection pass, as <see cref="GetSlateOptions"/>.</summary>
    /// <exception cref="SlateException">Invalid for an unknown key or a malformed value.</exception>
    public static GarbageCollectorOptions GetGarbageCollectorOptions(this IConfiguration section) =>
        Bind<GarbageCollectorOptions>(section);

    private static T Bind<T>(IConfiguration section) where T : class, new()
    {
        ArgumentNullException.ThrowIfNull(section);
        var path = section is IConfigurationSection s ? s.Path : "";
        return (T)BindObject(typeof(T), section, path);
    }

    private static string Join(string path, string key) => path.Length == 0 ? key : path + ":" + key;

    private static SlateException Invalid(string message) => new(SlateErrorKind.Invalid, message);

    private static object BindObject(Type type, IConfiguration section, string path)
    {
        var target = Activator.CreateInstance(type)!;
        var settable = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true })
            .ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);

        foreach (var child in section.GetChildren())
        {
            var key = Join(path, child.Key);
            if (!settable.TryGetValue(child.Key, out var property))
            {
                throw Invalid($"unknown setting '{key}' for {type.Name} (known: {string.Join(", ", settable.Keys.Order(StringComparer.Ordinal))})");
            }
            property.SetValue(target, Convert(property.PropertyType, child, key));
        }
        return target;
    }

    private static bool IsNone(string? value) =>
        value is null || NoneWords.Contains(value.Trim(), StringComparer.OrdinalIgnoreCase);

    private static object? Convert(Type type, IConfigurationSection section, string key)
    {
        var underlying = Nullable.GetUnderlyingType(type);
        var nullable = underlying is not null || !type.IsValueType;
        var target = underlying ?? type;
        var hasChildren = section.GetChildren().Any();

        if (target.IsInterface || target.IsAbstract || target == typeof(TimeProvider))
        {
            throw Invalid($"setting '{key}' is a component ({target.Name}) and cannot come from configuration; set it in code");
        }
        if (!hasChildren && nullable && IsNone(section.Value))
        {
            return null;
        }
        if (target.IsClass && target != typeof(string))
        {
            if (!hasChildren)
            {
                throw Invalid($"setting '{key}' = '{section.Value}' must be a section of {target.Name} settings or 'none'");
            }
            return BindObject(target, section, key);
        }
        if (hasChildren)
        {
            throw Invalid($"setting '{key}' must be a single {Describe(target)}, not a section");
        }
        var text = section.Value?.Trim();
        if (text is null)
        {
            throw Invalid($"setting '{key}' needs a value ({Describe(target)})");
        }
        return Parse(target, text) ?? throw Invalid($"setting '{key}' = '{section.Value}' is not {Describe(target)}");
    }

    private static string Describe(Type t) =>
        t == typeof(TimeSpan) ? "a duration (e.g. 250ms, 5s, 00:05:00)"
        : t == typeof(long) || t == typeof(int) ? $"an integer ({t.Name}; sizes may end in KiB, MiB or GiB)"
        : t == typeof(bool) ? "true or false"
        : t == typeof(double) ? "a number"
        : t == typeof(Guid) ? "a GUID"
        : t.IsEnum ? $"one of {string.Join(", ", Enum.GetNames(t))}"
        : $"a {t.Name}";

    private static object? Parse(Type t, string text)
    {
        if (t == typeof(string)) return text;
        if (t == typeof(bool)) return bool.TryParse(text, out var b) ? b : null;
        if (t == typeof(int))
        {
            var v = ParseSize(text);
            return v is >= int.MinValue and <= int.MaxValue ? (int)v.Value : null;
        }
        if (t == typeof(long)) return ParseSize(text);
        if (t == typeof(double))
        {
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) ? d : null;
        }
        if (t == typeof(TimeSpan)) return ParseDuration(text);
        if (t == typeof(Guid)) return Guid.TryParse(text, out var g) ? g : null;
        if (t.IsEnum)
        {
            // names only: a number would silently select an undefined member
            return !char.IsAsciiDigit(text[0]) && text[0] != '-' && Enum.TryParse(t, text, ignoreCase: true, out var e)
                ? e
                : null;
        }
        return null;
    }

    private static long? ParseSize(string text)
    {
        (string Suffix, long Factor)[] units = [("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30)];
        foreach (var (suffix, factor) in units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                var n = ParseSize(text[..^suffix.Length].TrimEnd());
                return n is { } v && v >= long.MinValue / factor && v <= long.MaxValue / factor ? v * factor : null;
            }
        }
        return long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) ? l : null;
    }

    /// <summary>
    /// A non-negative duration: a number with a unit (ms, s, m, h, d), a bare number of seconds,
    /// or a .NET time span; null when <paramref name="text"/> is none of these.
    /// </summary>
    internal static TimeSpan? ParseDuration(string text)
    {
        static double? Number(string s) =>
            double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= 0 && double.IsFinite(v)
                ? v
                : null;

        (string Suffix, double Ms)[] units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];
        foreach (var (suffix, ms) in units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && Number(text[..^suffix.Length].TrimEnd()) is { } n)
            {
                return n * ms <= TimeSpan.MaxValue.TotalMilliseconds ? TimeSpan.FromMilliseconds(n * ms) : null;
            }
        }
        if (Number(text) is { } seconds)
        {
            return seconds <= TimeSpan.MaxValue.TotalSeconds ? TimeSpan.FromSeconds(seconds) : null;
        }
        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var t) && t >= TimeSpan.Zero ? t : null;
    }
}
