"""bench --ablation's table and plots from result lines (the episodes themselves run through batch)."""

from PIL import Image

from bench.ablation import ablation_cells, ablation_svg, format_ablation_table, write_ablation_page


def _results():
    out = []
    for task in ("stack_blocks", "pick_place_tray"):
        for seed in range(4):
            for variant, ok in (("full", seed < 3), ("single_view", seed < 1)):
                out.append({"task": task, "task_name": task, "seed": seed, "config": "default", "variant": variant,
                            "success": ok, "steps": 10 + seed, "run_dir": None})
    return out


def test_cells_table_and_plots(tmp_path):
    tasks, variants, cells = ablation_cells(_results())
    assert tasks == ["pick_place_tray", "stack_blocks", "all tasks"] and variants == ["full", "single_view"]
    assert cells[("stack_blocks", "full")] == {"episodes": 4, "successes": 3, "success_rate": 0.75,
                                               "median_steps": 11.5}
    assert cells[("all tasks", "single_view")]["successes"] == 2
    table = format_ablation_table(_results())
    assert "75% (11.5)" in table and "25% (11.5)" in table and "episodes per cell: 4" in table
    assert ablation_svg(_results()).count("<rect") == 6 + 2     # 3 groups x 2 variants, 2 legend swatches
    page, png = write_ablation_page(str(tmp_path), _results(), ["note"])
    assert "<svg" in open(page).read()
    with Image.open(png) as img:
        assert img.size == (760, 320) and len(img.getcolors(100000)) > 3   # bars drawn, not a blank image
