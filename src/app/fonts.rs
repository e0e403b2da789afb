//! egui's own fonts have no Hangul, and a user's machine may have no Korean font: a subset of
//! Noto Sans KR (SIL OFL, `assets/fonts`) is compiled in and registered as the fallback of
//! every family.

pub fn install(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    fonts.font_data.insert(
        "noto-sans-kr".to_owned(),
        std::sync::Arc::new(egui::FontData::from_static(include_bytes!(
            "../../assets/fonts/NotoSansKR-Subset.ttf"
        ))),
    );
    for family in fonts.families.values_mut() {
        family.push("noto-sans-kr".to_owned());
    }
    ctx.set_fonts(fonts);
}
