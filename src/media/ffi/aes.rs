//! AES-128-CBC decryption through libavutil's `av_aes_*` (which the bindings leave out),
//! so the output check can read back segments it encrypted (HLS `METHOD=AES-128`).

use ff::ffi as sys;
use ffmpeg_next as ff;

/// Decrypts `data` (whole 16-byte blocks) with `key` and `iv`, AES-128-CBC, and strips the
/// PKCS#7 padding; None when the data is not whole blocks or the padding is not valid
/// (the wrong key, most likely).
pub fn aes128_cbc_decrypt(key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> Option<Vec<u8>> {
    if data.is_empty() || data.len() % 16 != 0 {
        return None;
    }
    let blocks = i32::try_from(data.len() / 16).ok()?;
    let mut out = vec![0u8; data.len()];
    let mut iv = *iv;
    // SAFETY: the context is allocated, initialised with a 16-byte key, used on `out` and
    // `data` of `blocks` * 16 bytes each and a 16-byte IV, and freed once, here.
    unsafe {
        let ctx = sys::av_aes_alloc();
        if ctx.is_null() {
            return None;
        }
        let ok = sys::av_aes_init(ctx, key.as_ptr(), 128, 1) == 0;
        if ok {
            sys::av_aes_crypt(
                ctx,
                out.as_mut_ptr(),
                data.as_ptr(),
                blocks,
                iv.as_mut_ptr(),
                1,
            );
        }
        sys::av_free(ctx.cast());
        if !ok {
            return None;
        }
    }
    let pad = usize::from(*out.last()?);
    let valid =
        (1..=16).contains(&pad) && out[out.len() - pad..].iter().all(|b| *b as usize == pad);
    valid.then(|| {
        out.truncate(out.len() - pad);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypts_what_openssl_encrypts() {
        // `printf 'ffarm segment' | openssl enc -aes-128-cbc -K 00..0f -iv 00..01 | xxd -p`
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let mut iv = [0u8; 16];
        iv[15] = 1;
        let cipher = hex("ea0ee70ceeda079a4cde2a9c1f5e4b44");
        let plain = aes128_cbc_decrypt(&key, &iv, &cipher);
        assert_eq!(plain.as_deref(), Some(&b"ffarm segment"[..]));
        assert_eq!(aes128_cbc_decrypt(&key, &iv, &cipher[..15]), None);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
