import { LabIcon } from '@jupyterlab/ui-components';

import falSvg from '../style/icons/fal.svg';

export const falIcon = new LabIcon({
  name: 'fal-notebook:fal',
  svgstr: falSvg
});
