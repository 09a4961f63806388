//! `ImagePropertiesWeigher`: similarity with the images of the host's
//! instances (multiplier 0.0 by default).

crate::weighers::host_weigher!(
    /// Nova's `ImagePropertiesWeigher`. It needs the image properties of
    /// the instances on each host, which host states do not carry yet:
    /// every host weighs 0 (the default multiplier is 0.0 anyway).
    ImagePropertiesWeigher, "ImagePropertiesWeigher", image_props_weight_multiplier, minval = None, constant = |_c| true,
    |_h, _c| 0.0
);
