//! The questions preset validation asks of the encoding engine: which encoders exist and
//! what each takes. The engine answers for its own build; presets only ask.

/// What the encoding engine can do, as far as checking a preset needs to know.
pub trait Capabilities {
    /// Whether the engine has the named encoder.
    fn encoder_available(&self, encoder: &str) -> bool;

    /// Whether the encoder accepts `option` (its own options or the generic codec ones).
    fn encoder_has_option(&self, encoder: &str, option: &str) -> bool;

    /// The pixel formats the encoder takes; empty when it does not say.
    fn encoder_pixel_formats(&self, encoder: &str) -> Vec<String>;

    /// The sample rates the encoder takes; empty when it takes any.
    fn encoder_sample_rates(&self, encoder: &str) -> Vec<u32>;

    /// Whether the engine knows the pixel format.
    fn pixel_format_exists(&self, name: &str) -> bool;

    /// The bits per sample of a pixel format the engine knows (its first component's depth).
    fn pixel_format_bits(&self, name: &str) -> Option<u32>;
}
